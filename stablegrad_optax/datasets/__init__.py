"""Small image datasets for the BatchNorm-free ResNet stress benchmark.

`load_cifar` reads CIFAR-10/100 from a local copy of the official archive
(nothing is downloaded), `load_digits32` turns scikit-learn's digits into
32x32 RGB images, and `synthetic_images` draws a learnable set from a seed.
All return an `ImageDataset` of NHWC float32 images normalised by the train
split. `augment` is the standard CIFAR augmentation in JAX and `batches` an
endless stream of shuffled minibatches.

Examples:
  >>> import jax
  >>> from stablegrad_optax.datasets import augment, batches, synthetic_images
  >>> data = synthetic_images(num_train=64, num_test=16)
  >>> data.train_images.shape, data.num_classes
  ((64, 32, 32, 3), 10)
  >>> images, labels = next(batches(data.train_images, data.train_labels, 16))
  >>> augment(jax.random.key(0), images).shape, labels.shape
  ((16, 32, 32, 3), (16,))
"""

from stablegrad_optax.datasets._augment import augment as augment
from stablegrad_optax.datasets._cifar import CIFAR_URL as CIFAR_URL
from stablegrad_optax.datasets._cifar import load_cifar as load_cifar
from stablegrad_optax.datasets._dataset import ImageDataset as ImageDataset
from stablegrad_optax.datasets._dataset import batches as batches
from stablegrad_optax.datasets._digits import load_digits32 as load_digits32
from stablegrad_optax.datasets._synthetic import synthetic_images as synthetic_images

__all__ = (
    "CIFAR_URL",
    "ImageDataset",
    "augment",
    "batches",
    "load_cifar",
    "load_digits32",
    "synthetic_images",
)
