"""Image datasets: CIFAR from local copies (restricted unpickling), digits32,
the synthetic set, the JAX augmentation and the minibatch stream."""

import io
import os
import pickle
import re
import struct
import sys
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stablegrad_optax.datasets import (
    CIFAR_URL,
    ImageDataset,
    augment,
    batches,
    load_cifar,
    load_digits32,
    synthetic_images,
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


# --- digits32 ----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_digits32()


def test_digits32_shapes_split_and_normalisation(digits):
    assert digits.name == "digits32" and digits.num_classes == 10
    assert digits.test_images.shape == (359, 32, 32, 3)  # round(0.2 * 1797)
    assert digits.train_images.shape == (1438, 32, 32, 3)
    assert digits.train_images.dtype == np.float32
    assert set(digits.train_labels.tolist()) == set(range(10))
    stats = digits.train_images.astype(np.float64)
    np.testing.assert_allclose(stats.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(stats.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
    images = digits.train_images[:20]
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    blocks = images[..., 0].reshape(20, 8, 4, 8, 4)  # nearest: 4x4 constant blocks
    np.testing.assert_array_equal(
        blocks, np.broadcast_to(blocks[:, :, :1, :, :1], blocks.shape)
    )


def test_digits32_is_deterministic_in_seed(digits):
    again = load_digits32(seed=0)
    for a, b in zip(digits, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = load_digits32(seed=1, test_fraction=0.5)
    assert len(other.test_labels) == 898  # round(898.5) rounds to even
    assert not np.array_equal(other.train_labels[:50], digits.train_labels[:50])


@pytest.mark.parametrize("test_fraction", [0, 1, -0.1, 1.5, "0.2", True])
def test_digits32_bad_test_fraction_raises(test_fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits32(test_fraction=test_fraction)


def test_digits32_without_scikit_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits32()


# --- synthetic ---------------------------------------------------------------


def nearest_class_mean_accuracy(data):
    train = data.train_images.reshape(len(data.train_labels), -1).astype(np.float64)
    means = np.stack(
        [train[data.train_labels == k].mean(axis=0) for k in range(data.num_classes)]
    )
    test = data.test_images.reshape(len(data.test_labels), -1).astype(np.float64)
    distance = np.sum(means**2, axis=1)[None, :] - 2 * test @ means.T
    return float(np.mean(distance.argmin(axis=1) == data.test_labels))


def test_synthetic_shapes_balance_and_determinism():
    options = dict(num_classes=4, num_train=40, num_test=12, image_size=16, channels=1)
    data = synthetic_images(**options, seed=3)
    assert data.name == "synthetic" and data.num_classes == 4
    assert data.train_images.shape == (40, 16, 16, 1)
    assert data.test_images.shape == (12, 16, 16, 1)
    assert data.train_images.dtype == np.float32 and data.train_labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(data.train_labels), [10] * 4)
    stats = data.train_images.astype(np.float64)
    np.testing.assert_allclose(stats.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(stats.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
    for a, b in zip(data, synthetic_images(**options, seed=3), strict=True):
        np.testing.assert_array_equal(a, b)
    other = synthetic_images(**options, seed=4)
    assert not np.allclose(other.train_images, data.train_images)


def test_synthetic_test_split_does_not_depend_on_num_train():
    small, large = synthetic_images(num_train=100), synthetic_images(num_train=300)
    np.testing.assert_array_equal(small.test_labels, large.test_labels)
    for channel in range(3):  # the same draws, normalised by other statistics
        a = small.test_images[..., channel].ravel()
        b = large.test_images[..., channel].ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.99999


def test_synthetic_is_learnable_but_not_trivial():
    accuracy = nearest_class_mean_accuracy(synthetic_images())
    assert 0.5 < accuracy < 0.99, accuracy  # chance is 0.1
    easy = synthetic_images(noise=0.0, max_shift=0, num_train=20, num_test=20)
    assert nearest_class_mean_accuracy(easy) == 1.0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("num_classes", 1),
        ("num_train", 0),
        ("num_test", 2.5),
        ("image_size", 0),
        ("channels", 0),
        ("noise", -1.0),
        ("noise", float("nan")),
        ("max_shift", 17),
        ("max_shift", -1),
    ],
)
def test_synthetic_bad_options_raise(option, value):
    with pytest.raises(ValueError, match=option):
        synthetic_images(**{option: value})


# --- augment -----------------------------------------------------------------


def _images(n=6, size=8, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, size, size, channels)).astype(np.float32)


def crops_of(image, padding):
    """{(top, left, flipped): candidate} for every crop of the padded image."""
    size = image.shape[0]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    out = {}
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[top : top + size, left : left + image.shape[1]]
            out[top, left, False] = crop
            out[top, left, True] = crop[:, ::-1]
    return out


def test_augment_keeps_shape_dtype_and_runs_under_jit():
    images = jnp.asarray(_images(n=4, size=32, channels=3))
    key = jax.random.key(0)
    eager = augment(key, images)
    jitted = jax.jit(augment)(key, images)
    assert eager.shape == images.shape and eager.dtype == images.dtype
    np.testing.assert_array_equal(eager, jitted)
    as_bf16 = augment(jax.random.PRNGKey(0), images.astype(jnp.bfloat16), padding=2)
    assert as_bf16.dtype == jnp.bfloat16


def test_augment_without_padding_or_flip_is_the_identity():
    images = _images()
    np.testing.assert_array_equal(
        augment(jax.random.key(1), images, padding=0, flip=False), images
    )


@pytest.mark.parametrize("flip", [True, False])
def test_each_output_is_a_crop_of_the_padded_input_or_its_mirror(flip):
    images = _images(n=16)
    out = np.asarray(augment(jax.random.key(2), images, padding=2, flip=flip))
    seen = set()
    for image, result in zip(images, out, strict=True):
        matches = [
            where
            for where, crop in crops_of(image, 2).items()
            if np.array_equal(crop, result)
        ]
        assert len(matches) == 1, matches
        assert flip or not matches[0][2]
        seen.add(matches[0])
    assert len({(top, left) for top, left, _ in seen}) > 3  # offsets vary
    if flip:
        assert {flipped for _, _, flipped in seen} == {True, False}


def test_different_keys_give_different_crops():
    images = _images()
    a = augment(jax.random.key(0), images, flip=False)
    b = augment(jax.random.key(1), images, flip=False)
    assert not np.array_equal(a, b)


def test_augment_bad_arguments_raise():
    with pytest.raises(ValueError, match="4-D NHWC"):
        augment(jax.random.key(0), _images()[0])
    with pytest.raises(ValueError, match="padding"):
        augment(jax.random.key(0), _images(), padding=-1)


# --- batches -----------------------------------------------------------------


def test_batches_shapes_and_epochs_are_permutations():
    images = np.tile(np.arange(10.0).reshape(10, 1, 1, 1), (1, 2, 2, 1))
    labels = np.arange(10)
    stream = batches(images, labels, 4, seed=0)
    epochs = []
    for _ in range(3):  # 10 // 4 = 2 batches per epoch, the last 2 dropped
        epoch = [next(stream) for _ in range(2)]
        for x, y in epoch:
            assert x.shape == (4, 2, 2, 1) and y.shape == (4,)
            np.testing.assert_array_equal(x[:, 0, 0, 0], y)
        seen = np.concatenate([y for _, y in epoch])
        assert len(set(seen.tolist())) == 8
        epochs.append(seen)
    assert not all(np.array_equal(epochs[0], e) for e in epochs[1:])
    full = batches(images, labels, 5, seed=1)
    epoch = np.concatenate([next(full)[1] for _ in range(2)])
    np.testing.assert_array_equal(np.sort(epoch), labels)
    again = batches(images, labels, 5, seed=1)
    np.testing.assert_array_equal(next(again)[1], epoch[:5])


@pytest.mark.parametrize("batch_size", [0, 11, 2.5, True])
def test_batches_bad_batch_size_raises_at_the_call(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        batches(np.zeros((10, 2)), np.zeros(10), batch_size)


def test_batches_length_mismatch_raises():
    with pytest.raises(ValueError, match="same number of examples"):
        batches(np.zeros((10, 2)), np.zeros(9), 2)
