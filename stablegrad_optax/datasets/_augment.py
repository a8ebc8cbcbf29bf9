"""The standard CIFAR augmentation (pad, random crop, random flip) in JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stablegrad_optax.datasets._dataset import check_int


def augment(
    key: jax.Array, images: jax.Array, *, padding: int = 4, flip: bool = True
) -> jax.Array:
    """Per image: zero-pad, crop back at a random offset, maybe mirror.

    Each image gets its own key (`jax.random.split`) and is transformed under
    `jax.vmap`: it is padded with `padding` zeros on every side (on normalised
    images a zero is the channel mean), a window of the original size is cut
    at a uniform random offset in [0, 2 * padding] along each axis
    (`jax.lax.dynamic_slice`), and with `flip` it is mirrored left-right with
    probability 1/2. `padding=0, flip=False` is the identity.

    `padding` and `flip` fix the shapes and the program, so they must be
    Python values: under `jax.jit`, close over them (`functools.partial`) or
    mark them static (`static_argnames=("padding", "flip")`).

    Args:
      key: a PRNG key (typed or raw uint32).
      images: a batch in NHWC layout, (n, height, width, channels).
      padding: zeros added on each side before cropping, an integer >= 0.
      flip: whether to mirror left-right at random.

    Returns:
      The augmented batch, same shape and dtype as `images`.

    Raises:
      ValueError: if `images` is not 4-D or `padding` is not an integer >= 0.

    Examples:
      >>> import jax
      >>> from stablegrad_optax.datasets import augment, synthetic_images
      >>> data = synthetic_images(num_train=8, num_test=8)
      >>> out = jax.jit(augment)(jax.random.key(0), data.train_images)
      >>> out.shape, out.dtype
      ((8, 32, 32, 3), dtype('float32'))
    """
    padding = check_int("padding", padding, 0)
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "images must be a 4-D NHWC batch (n, height, width, channels), got "
            f"shape {images.shape}."
        )
    _, height, width, channels = images.shape
    pad = ((padding, padding), (padding, padding), (0, 0))

    def one(image_key, image):
        crop_key, flip_key = jax.random.split(image_key)
        top, left = jax.random.randint(crop_key, (2,), 0, 2 * padding + 1)
        padded = jnp.pad(image, pad)
        image = jax.lax.dynamic_slice(padded, (top, left, 0), (height, width, channels))
        if flip:
            image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
        return image

    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)
