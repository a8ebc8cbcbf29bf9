"""The image dataset tuple, train-split normalisation and a minibatch stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

# Rows per chunk when computing statistics, so that a float64 temporary stays
# small (CIFAR's 50000 training images would need 1.2 GB at once).
_CHUNK = 1024


class ImageDataset(NamedTuple):
    """Train and test images (NHWC float32, normalised) with int32 labels."""

    train_images: np.ndarray  # shape=(n_train, height, width, channels), float32
    train_labels: np.ndarray  # shape=(n_train,), int32
    test_images: np.ndarray  # shape=(n_test, height, width, channels), float32
    test_labels: np.ndarray  # shape=(n_test,), int32
    num_classes: int
    name: str


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """`value` as an int, or a `ValueError` naming `name` and the accepted range."""
    accepted = (
        f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    )
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be {accepted}, got {value!r}.")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {accepted}, got {value!r}.")
    return int(value)


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of NHWC `images`, in float64.

    Computed in chunks of images, in two passes (mean, then centred squares). A
    channel with std 0 gets std 1, so normalising it gives zeros, not NaN.
    """
    count = images.shape[0] * images.shape[1] * images.shape[2]
    chunks = [images[i : i + _CHUNK] for i in range(0, images.shape[0], _CHUNK)]
    mean = sum(c.sum(axis=(0, 1, 2), dtype=np.float64) for c in chunks) / count
    squares = sum(np.square(c - mean).sum(axis=(0, 1, 2)) for c in chunks)
    std = np.sqrt(squares / count)
    return mean, np.where(std > 0, std, 1.0)


def _standardise(images: np.ndarray, mean: np.ndarray, std: np.ndarray):
    out = np.empty(images.shape, np.float32)
    for i in range(0, images.shape[0], _CHUNK):
        out[i : i + _CHUNK] = (images[i : i + _CHUNK] - mean) / std
    return out


def make_dataset(
    name: str,
    num_classes: int,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> ImageDataset:
    """An `ImageDataset` whose splits are normalised by the train statistics.

    Args:
      name: the dataset's name.
      num_classes: number of classes.
      train: (images NHWC of any real dtype, integer labels).
      test: the same for the test split.

    Returns:
      The dataset, images float32 with per-channel train mean 0 and std 1.
    """
    if train[0].ndim != 4 or train[0].shape[0] == 0:
        raise ValueError(
            f"{name}: the train split must hold NHWC images, got {train[0].shape}."
        )
    mean, std = channel_statistics(train[0])
    return ImageDataset(
        train_images=_standardise(train[0], mean, std),
        train_labels=np.asarray(train[1], np.int32),
        test_images=_standardise(test[0], mean, std),
        test_labels=np.asarray(test[1], np.int32),
        num_classes=int(num_classes),
        name=name,
    )


def batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, *, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless stream of shuffled `(images, labels)` minibatches (numpy).

    Each epoch is a fresh permutation of the examples; the last incomplete
    batch of an epoch is dropped, so every batch has `batch_size` rows. The
    arguments are checked when `batches` is called, not at the first `next`.

    Args:
      images: examples, first axis indexes them (moved to host memory).
      labels: one label per example.
      batch_size: examples per batch, from 1 to the number of examples.
      seed: seed of the shuffling (numpy's `default_rng`).

    Returns:
      An infinite iterator of `(images[idx], labels[idx])` pairs.

    Raises:
      ValueError: if images and labels differ in length, or `batch_size` is
        not in [1, number of examples].

    Examples:
      >>> import numpy as np
      >>> from stablegrad_optax.datasets import batches
      >>> stream = batches(np.arange(10), np.arange(10) % 2, 4, seed=0)
      >>> x, y = next(stream)
      >>> x.shape, y.shape
      ((4,), (4,))
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 0 or labels.shape[:1] != images.shape[:1]:
        raise ValueError(
            "images and labels must have the same number of examples (first "
            f"axis), got shapes {images.shape} and {labels.shape}."
        )
    num = images.shape[0]
    if num == 0:
        raise ValueError("batches needs at least one example, got none.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be an integer, got {batch_size!r}.")
    if not 1 <= batch_size <= num:
        raise ValueError(
            f"batch_size must be in [1, {num}] (the number of examples), got "
            f"{batch_size}."
        )

    def stream():
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(num)
            for start in range(0, num - batch_size + 1, batch_size):
                index = order[start : start + batch_size]
                yield images[index], labels[index]

    return stream()
