"""BatchNorm-free nets: the models, SkipInit, local data."""

import jax
import jax.numpy as jnp

from stablegrad_optax import datasets, models

# [start models]
# norm: "batch", "none" or "skipinit" (a zero-initialised gain on each branch)
net = models.ResNet18(num_classes=10, norm="skipinit", stem="cifar", width=8)
digits = datasets.load_digits32()  # no download: scikit-learn's digits at 32x32
# CIFAR: the python-version archive (or its folder), read locally, never downloaded
# data = datasets.load_cifar("~/data", num_classes=10)
# [end models]

images = jnp.asarray(digits.train_images[:4])
logits = jax.eval_shape(  # shapes only: nothing compiled
    lambda images: net.init_with_output(jax.random.key(0), images, train=False)[0],
    images,
)
assert logits.shape == (4, 10)
