"""CIFAR-10 and CIFAR-100 from the official "python version" archive.

Nothing is downloaded: the user gives the archive (or the folder it extracts
to) and it is read in place, an archive in memory without extracting it. The
batches are Python-2 pickles, and unpickling can run whatever a file names, so
they are read by an unpickler that admits numpy's array reconstruction only.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from stablegrad_optax.datasets._dataset import ImageDataset, make_dataset

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

_SIDE = 32
_ROW = 3 * _SIDE * _SIDE  # 1024 red, 1024 green, 1024 blue values, row-major


class _Layout(NamedTuple):
    """Where one CIFAR variant keeps its batches, and its label key."""

    name: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str


_LAYOUTS = {
    10: _Layout(
        name="cifar10",
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key="labels",
    ),
    100: _Layout(
        name="cifar100",
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        train_files=("train",),
        test_files=("test",),
        label_key="fine_labels",
    ),
}

# The only globals a CIFAR pickle may name. The real files (numpy 1, Python 2)
# name `numpy.core.multiarray`, numpy 2 writes `numpy._core.multiarray`; both
# map to the reconstruction function of the numpy running now, taken from an
# array's own `__reduce__`, so no deprecated module is imported.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside `_ALLOWED_GLOBALS`."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles containers, strings, numbers and numpy arrays, nothing else.

    Every global (the only way a pickle reaches code) goes through
    `find_class`; one outside `_ALLOWED_GLOBALS` raises `_RefusedGlobal` (a
    `pickle.UnpicklingError`) before anything is called.
    """

    def __init__(self, raw: bytes, source: str):
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"{self._source}: refused the global {module}.{name}; a CIFAR "
                "batch may only reconstruct numpy arrays ("
                + ", ".join(sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS))
                + "). The file is not the official archive's; nothing was run."
            ) from None


def _unpickle(raw: bytes, source: str):
    try:
        return _ArrayOnlyUnpickler(raw, source).load()
    except _RefusedGlobal:
        raise
    except Exception as err:  # a malformed stream can fail in many ways
        raise pickle.UnpicklingError(
            f"{source}: not a readable CIFAR pickle ({type(err).__name__}: {err})."
        ) from err


def _not_found(path: Path, layout: _Layout, detail: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"CIFAR-{layout.name[5:]} not found at {path}: {detail}. Looked for the "
        f"folder {layout.folder!r} or the archive {layout.archive!r} (the path "
        f"itself or inside it). Download {layout.archive!r} (the python "
        f"version) from {CIFAR_URL} yourself and pass its path or its folder; "
        "nothing is downloaded at run time."
    )


def _read_folder(folder: Path, names, layout: _Layout) -> dict[str, tuple]:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise _not_found(folder, layout, f"missing {', '.join(missing)}")
    return {name: (str(folder / name), (folder / name).read_bytes()) for name in names}


def _read_archive(archive: Path, names, layout: _Layout) -> dict[str, tuple]:
    wanted = {f"{layout.folder}/{name}": name for name in names}
    found = {}
    try:
        # One streaming pass: members are read in memory, never extracted.
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                member_name = member.name.removeprefix("./")
                if member_name in wanted and member.isfile():
                    raw = tar.extractfile(member).read()
                    found[wanted[member_name]] = (f"{archive}:{member_name}", raw)
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{archive} is not a readable tar archive ({err}).") from err
    missing = [member for member, name in wanted.items() if name not in found]
    if missing:
        raise _not_found(archive, layout, f"the archive lacks {', '.join(missing)}")
    return found


def _read_files(path: Path, layout: _Layout) -> dict[str, tuple]:
    """{file name: (source for messages, raw bytes)} for all batches."""
    names = layout.train_files + layout.test_files
    if not path.exists():
        raise _not_found(path, layout, "the path does not exist")
    if path.is_file():
        return _read_archive(path, names, layout)
    if (path / layout.folder).is_dir():
        return _read_folder(path / layout.folder, names, layout)
    if (path / layout.archive).is_file():
        return _read_archive(path / layout.archive, names, layout)
    if path.name == layout.folder or any((path / n).exists() for n in names):
        return _read_folder(path, names, layout)
    raise _not_found(path, layout, "neither is there")


def _parse_batch(raw: bytes, source: str, layout: _Layout, num_classes: int):
    """(uint8 NHWC images, int64 labels) of one batch, with its content checked."""
    content = _unpickle(raw, source)
    if not isinstance(content, dict):
        raise ValueError(
            f"{source}: a CIFAR batch is a dict, got {type(content).__name__}."
        )
    content = {
        key.decode("latin-1") if isinstance(key, bytes) else key: value
        for key, value in content.items()
    }
    missing = [key for key in ("data", layout.label_key) if key not in content]
    if missing:
        raise ValueError(f"{source}: missing the keys {missing} of a CIFAR batch.")
    data = content["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _ROW
    ):
        raise ValueError(
            f"{source}: 'data' must be a uint8 array of shape (n, {_ROW}), got "
            f"{getattr(data, 'dtype', type(data).__name__)} "
            f"{getattr(data, 'shape', '')}."
        )
    labels = content[layout.label_key]
    if not isinstance(labels, list | tuple | np.ndarray):
        raise ValueError(
            f"{source}: {layout.label_key!r} must be a list of integers, got "
            f"{type(labels).__name__}."
        )
    labels = np.asarray(labels)
    if labels.size == 0:
        labels = labels.astype(np.int64)
    if labels.shape != data.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{source}: {layout.label_key!r} must hold {data.shape[0]} integers "
            f"(one per row of 'data'), got {labels.dtype} of shape {labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{source}: {layout.label_key!r} must be in [0, {num_classes}), got "
            f"values from {labels.min()} to {labels.max()}."
        )
    images = data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int64)


def load_cifar(path: str | os.PathLike, *, num_classes: int = 10) -> ImageDataset:
    """CIFAR-10 or CIFAR-100 from a local copy of the official python archive.

    `path` may be the extracted folder (`cifar-10-batches-py`,
    `cifar-100-python`), a folder holding it, the archive
    (`cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`) or a folder holding
    that. An archive is read in memory in one pass, never extracted. Nothing is
    downloaded: get the archive from https://www.cs.toronto.edu/~kriz/cifar.html.
    Only the batches are read (`batches.meta` / `meta`, the class names, are
    not). CIFAR-100 uses its 100 fine labels.

    The batches are Python-2 pickles. They are unpickled with an unpickler that
    admits only the globals numpy's array reconstruction needs
    (`numpy.core.multiarray._reconstruct`, its numpy-2 name
    `numpy._core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`); any
    other global raises `pickle.UnpicklingError` without being called. A file
    that is not a pickle of that form raises `pickle.UnpicklingError` too.

    Images (CIFAR rows: 1024 red, 1024 green, 1024 blue values, each a
    row-major 32x32 plane) become NHWC float32, normalised per channel by the
    mean and std of the train split.

    Args:
      path: the folder or archive, or a folder that holds one (`~` expanded).
      num_classes: 10 for CIFAR-10, 100 for CIFAR-100.

    Returns:
      An `ImageDataset` named "cifar10" or "cifar100" (50000 train and 10000
      test images for the official archives).

    Raises:
      ValueError: for `num_classes` other than 10 or 100, for a file that is
        not a tar archive, or for a batch whose content is not a CIFAR batch
        (the message names the file).
      FileNotFoundError: if the path, folder, archive or one of the batches is
        missing; the message says what was looked for and where to download.
      pickle.UnpicklingError: for a batch that names a refused global or is not
        a readable pickle.

    Examples:
      >>> from stablegrad_optax.datasets import load_cifar
      >>> data = load_cifar("~/data", num_classes=10)  # doctest: +SKIP
      >>> data.train_images.shape, data.test_images.shape  # doctest: +SKIP
      ((50000, 32, 32, 3), (10000, 32, 32, 3))
    """
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int | np.integer)
        or int(num_classes) not in _LAYOUTS
    ):
        raise ValueError(
            "num_classes must be 10 (CIFAR-10) or 100 (CIFAR-100), got "
            f"{num_classes!r}."
        )
    layout = _LAYOUTS[int(num_classes)]
    files = _read_files(Path(os.fspath(path)).expanduser(), layout)

    def split(names):
        parts = [
            _parse_batch(raw, src, layout, num_classes)
            for src, raw in (files[name] for name in names)
        ]
        return (
            np.concatenate([images for images, _ in parts]),
            np.concatenate([labels for _, labels in parts]),
        )

    return make_dataset(
        layout.name, num_classes, split(layout.train_files), split(layout.test_files)
    )
