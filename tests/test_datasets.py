"""Image datasets: digits32, the synthetic set, the JAX augmentation and the
minibatch stream (CIFAR: test_datasets_cifar.py)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stablegrad_optax.datasets import (
    augment,
    batches,
    load_digits32,
    synthetic_images,
)

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
