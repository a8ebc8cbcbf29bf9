"""CIFAR from local copies in the official format: every layout, restricted
unpickling, and a clear error for every bad file."""

import io
import os
import pickle
import re
import struct
import tarfile

import numpy as np
import pytest

from stablegrad_optax.datasets import (
    CIFAR_URL,
    ImageDataset,
    load_cifar,
)

# --- CIFAR archives in the official format, written small -------------------

FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
ARCHIVES = {10: "cifar-10-python.tar.gz", 100: "cifar-100-python.tar.gz"}
TRAIN_FILES = {10: [f"data_batch_{i}" for i in range(1, 6)], 100: ["train"]}
TEST_FILES = {10: ["test_batch"], 100: ["test"]}
META_FILES = {10: "batches.meta", 100: "meta"}


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it: `str` and `bytes` as BINSTRING.

    Python 3 at protocol 2 writes bytes as calls to `_codecs.encode`, a global
    the real archives never name (and the loader refuses).
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj, *, legacy_numpy_name=True) -> bytes:
    """`obj` pickled as the real files are; numpy 2's module name rewritten to
    `numpy.core.multiarray` (what numpy 1 wrote) unless `legacy_numpy_name` is
    False."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    raw = buffer.getvalue()
    assert b"cnumpy._core.multiarray\n_reconstruct\n" in raw or b"numpy" not in raw
    if legacy_numpy_name:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return raw


def cifar_batch(rng, rows, num_classes):
    """A batch dict with the official keys, random pixels and labels."""
    labels = [int(v) for v in rng.integers(0, num_classes, rows)]
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"data": rng.integers(0, 256, (rows, 3072)).astype(np.uint8),
        b"filenames": [b"image_%d.png" % i for i in range(rows)],
    }
    if num_classes == 10:
        batch[b"labels"] = labels
    else:
        batch[b"fine_labels"] = labels
        batch[b"coarse_labels"] = [v // 5 for v in labels]
    return batch


def cifar_files(num_classes, seed=0, train_rows=6, test_rows=4):
    """{file name: batch dict} of a whole tiny CIFAR copy (meta included)."""
    rng = np.random.default_rng(seed)
    files = {
        name: cifar_batch(rng, train_rows, num_classes)
        for name in TRAIN_FILES[num_classes]
    }
    files.update(
        {
            name: cifar_batch(rng, test_rows, num_classes)
            for name in TEST_FILES[num_classes]
        }
    )
    files[META_FILES[num_classes]] = {
        b"label_names": [b"c%d" % i for i in range(num_classes)]
    }
    return files


def write_cifar(root, num_classes, files, where="folder", raw_files=None):
    """Writes `files` (pickled) plus `raw_files` (bytes as given) and returns
    the path to pass: the folder, its parent, the .tar.gz or its parent."""
    contents = {name: py2_pickle(batch) for name, batch in files.items()}
    contents.update(raw_files or {})
    folder = FOLDERS[num_classes]
    if where in ("folder", "parent"):
        (root / folder).mkdir(parents=True)
        for name, raw in contents.items():
            (root / folder / name).write_bytes(raw)
        return root / folder if where == "folder" else root
    root.mkdir(parents=True, exist_ok=True)
    archive = root / ARCHIVES[num_classes]
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in contents.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return archive if where == "archive" else root


def nhwc(data):
    """CIFAR rows (1024 red, 1024 green, 1024 blue) to NHWC, done by hand."""
    out = np.zeros((data.shape[0], 32, 32, 3), data.dtype)
    for channel in range(3):
        plane = data[:, channel * 1024 : (channel + 1) * 1024]
        out[..., channel] = plane.reshape(-1, 32, 32)
    return out


def expected_splits(files, num_classes):
    key = b"labels" if num_classes == 10 else b"fine_labels"

    def stack(names):
        images = np.concatenate([nhwc(files[n][b"data"]) for n in names])
        labels = np.concatenate([files[n][key] for n in names])
        return images.astype(np.float64), labels

    train, test = stack(TRAIN_FILES[num_classes]), stack(TEST_FILES[num_classes])
    mean = train[0].mean(axis=(0, 1, 2))
    std = train[0].std(axis=(0, 1, 2))
    return (train[0] - mean) / std, train[1], (test[0] - mean) / std, test[1]


@pytest.mark.parametrize("where", ["folder", "parent", "archive", "archive_parent"])
@pytest.mark.parametrize("num_classes", [10, 100])
def test_cifar_loads_every_layout(tmp_path, num_classes, where):
    files = cifar_files(num_classes)
    path = write_cifar(tmp_path / "data", num_classes, files, where)
    data = load_cifar(str(path), num_classes=num_classes)
    if where.startswith("archive"):  # read in memory, nothing extracted
        assert [p.name for p in (tmp_path / "data").iterdir()] == [
            ARCHIVES[num_classes]
        ]
    assert isinstance(data, ImageDataset)
    assert data.name == f"cifar{num_classes}" and data.num_classes == num_classes
    rows = 6 * len(TRAIN_FILES[num_classes])
    assert data.train_images.shape == (rows, 32, 32, 3)
    assert data.test_images.shape == (4, 32, 32, 3)
    assert data.train_images.dtype == data.test_images.dtype == np.float32
    assert data.train_labels.dtype == data.test_labels.dtype == np.int32
    train, train_labels, test, test_labels = expected_splits(files, num_classes)
    np.testing.assert_allclose(data.train_images, train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.test_images, test, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(data.train_labels, train_labels)
    np.testing.assert_array_equal(data.test_labels, test_labels)
    stats = data.train_images.astype(np.float64)
    np.testing.assert_allclose(stats.mean(axis=(0, 1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(stats.std(axis=(0, 1, 2)), 1.0, atol=1e-6)


def test_cifar_pixels_land_in_place(tmp_path):
    files = cifar_files(10)
    data = files["data_batch_1"][b"data"]
    data[0] = 0
    data[0, 0 * 1024 + 1 * 32 + 2] = 200  # red at row 1, column 2
    data[0, 1 * 1024 + 5 * 32 + 0] = 100  # green at row 5, column 0
    data[0, 2 * 1024 + 31 * 32 + 31] = 50  # blue at row 31, column 31
    loaded = load_cifar(write_cifar(tmp_path, 10, files))
    raw = np.concatenate([files[n][b"data"] for n in TRAIN_FILES[10]])
    planes = raw.reshape(-1, 3, 1024).astype(np.float64)
    mean, std = planes.mean(axis=(0, 2)), planes.std(axis=(0, 2))
    image = np.rint(loaded.train_images[0] * std + mean)
    expected = np.zeros((32, 32, 3))
    expected[1, 2, 0], expected[5, 0, 1], expected[31, 31, 2] = 200, 100, 50
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("legacy_numpy_name", [True, False])
def test_both_numpy_module_names_load(tmp_path, legacy_numpy_name):
    files = cifar_files(100)
    raw = py2_pickle(files["train"], legacy_numpy_name=legacy_numpy_name)
    name = b"numpy.core.multiarray" if legacy_numpy_name else b"numpy._core.multiarray"
    assert b"c" + name + b"\n_reconstruct\n" in raw
    path = write_cifar(tmp_path, 100, files, raw_files={"train": raw})
    data = load_cifar(path, num_classes=100)
    np.testing.assert_array_equal(data.train_labels, files["train"][b"fine_labels"])


class Payload:
    """Unpickling calls `function(argument)`."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("how", ["exec", "os.system"])
def test_a_malicious_pickle_is_refused_without_running(tmp_path, how):
    sentinel = tmp_path / "pwned"
    if how == "exec":
        payload = Payload(exec, f"open({str(sentinel)!r}, 'w').close()")
    else:
        payload = Payload(os.system, f"touch {sentinel}")
    files = cifar_files(10)
    files["data_batch_1"][b"data"] = payload
    raw = py2_pickle(files["data_batch_1"])
    if how == "exec":  # the payload is live: plain pickle runs it
        pickle.loads(raw, encoding="bytes")
        assert sentinel.exists()
        sentinel.unlink()
    path = write_cifar(tmp_path / "data", 10, files, raw_files={"data_batch_1": raw})
    with pytest.raises(pickle.UnpicklingError, match="refused") as info:
        load_cifar(path)
    assert "data_batch_1" in str(info.value)
    assert ("exec" if how == "exec" else "system") in str(info.value)
    assert not sentinel.exists()


def test_numpy_globals_outside_array_reconstruction_are_refused(tmp_path):
    raw = b"\x80\x02cnumpy\nload\nq\x00)R."  # numpy.load()
    path = write_cifar(tmp_path, 10, cifar_files(10), raw_files={"test_batch": raw})
    with pytest.raises(pickle.UnpicklingError, match=r"test_batch.*numpy\.load"):
        load_cifar(path)


def test_a_truncated_pickle_names_the_file(tmp_path):
    raw = py2_pickle(cifar_files(10)["test_batch"])[:200]
    path = write_cifar(tmp_path, 10, cifar_files(10), raw_files={"test_batch": raw})
    with pytest.raises(pickle.UnpicklingError, match="test_batch"):
        load_cifar(path)


def _bad_batches():
    def batch(**changes):
        out = cifar_batch(np.random.default_rng(1), 6, 10)
        for key, value in changes.items():
            if value is None:
                del out[key.encode()]
            else:
                out[key.encode()] = value
        return out

    return {
        "not a dict": [batch()],
        "no labels": batch(labels=None),
        "short rows": batch(data=np.zeros((6, 1024), np.uint8)),
        "float data": batch(data=np.zeros((6, 3072), np.float32)),
        "data a list": batch(data=[0] * 3072),
        "labels too few": batch(labels=[0] * 5),
        "labels not ints": batch(labels=[0.5] * 6),
        "label too large": batch(labels=[10] * 6),
        "label negative": batch(labels=[-1] * 6),
    }


@pytest.mark.parametrize("case", sorted(_bad_batches()))
def test_bad_batch_content_raises_naming_the_file(tmp_path, case):
    files = cifar_files(10)
    files["data_batch_2"] = _bad_batches()[case]
    path = write_cifar(tmp_path, 10, files, "archive")
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar(path)


def test_missing_data_raises_file_not_found_with_the_url(tmp_path):
    url = re.escape(CIFAR_URL)
    assert CIFAR_URL == "https://www.cs.toronto.edu/~kriz/cifar.html"
    with pytest.raises(FileNotFoundError, match=url) as info:
        load_cifar(tmp_path / "nowhere")
    assert "cifar-10-batches-py" in str(info.value)
    assert "cifar-10-python.tar.gz" in str(info.value)
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        load_cifar(tmp_path, num_classes=100)  # exists, holds neither

    files = cifar_files(10)
    del files["data_batch_3"]
    folder = write_cifar(tmp_path / "folder", 10, files)
    with pytest.raises(FileNotFoundError, match=f"data_batch_3.*{url}"):
        load_cifar(folder)
    archive = write_cifar(tmp_path / "archive", 10, files, "archive")
    with pytest.raises(FileNotFoundError, match=f"data_batch_3.*{url}"):
        load_cifar(archive)


def test_a_file_that_is_not_an_archive_raises(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"not a tar file at all")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        load_cifar(path)


@pytest.mark.parametrize("num_classes", [20, 0, 10.0, "10", True])
def test_bad_num_classes_raises(tmp_path, num_classes):
    with pytest.raises(ValueError, match="num_classes must be 10.*or 100"):
        load_cifar(tmp_path, num_classes=num_classes)
