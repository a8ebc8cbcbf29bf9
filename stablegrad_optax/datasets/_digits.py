"""scikit-learn's 8x8 handwritten digits as 32x32 RGB images ("digits32")."""

from __future__ import annotations

import numpy as np

from stablegrad_optax.datasets._dataset import ImageDataset, make_dataset

_SIDE = 32


def load_digits32(*, test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn's digits (1797 images, 10 classes) at CIFAR's size and layout.

    The 8x8 images (values 0 to 16) are upsampled 4x by nearest neighbour
    (each pixel becomes a 4x4 block, so no value is invented), repeated to 3
    identical channels, shuffled with `seed` and split; both splits are then
    normalised by the train split's per-channel mean and std. The data ship
    with scikit-learn, so nothing is downloaded; scikit-learn itself is an
    optional dependency, imported only here.

    Args:
      test_fraction: share of the images in the test split, in (0, 1); the
        test split gets `round(test_fraction * 1797)` images, at least one and
        at most 1796.
      seed: seed of the shuffle before the split (numpy's `default_rng`).

    Returns:
      An `ImageDataset` named "digits32", images (n, 32, 32, 3) float32.

    Raises:
      ValueError: if `test_fraction` is not a number in (0, 1).
      ImportError: if scikit-learn is not installed.

    Examples:
      >>> from stablegrad_optax.datasets import load_digits32
      >>> data = load_digits32(test_fraction=0.25)
      >>> data.train_images.shape, data.test_images.shape, data.num_classes
      ((1348, 32, 32, 3), (449, 32, 32, 3), 10)
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float | np.floating)
        or not 0 < test_fraction < 1
    ):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "load_digits32 needs scikit-learn, an optional dependency: "
            "pip install scikit-learn"
        ) from err
    digits = load_digits()
    small = np.asarray(digits.images, np.float32)  # (1797, 8, 8)
    factor = _SIDE // small.shape[1]
    images = small.repeat(factor, axis=1).repeat(factor, axis=2)
    images = np.repeat(images[..., None], 3, axis=-1)
    labels = np.asarray(digits.target)
    num = images.shape[0]
    order = np.random.default_rng(seed).permutation(num)
    num_test = min(num - 1, max(1, round(test_fraction * num)))
    test, train = order[:num_test], order[num_test:]
    return make_dataset(
        "digits32", 10, (images[train], labels[train]), (images[test], labels[test])
    )
