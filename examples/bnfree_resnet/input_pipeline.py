"""The data: digits-32, a synthetic set, or CIFAR from a local archive."""

from __future__ import annotations

from stablegrad_optax import datasets


def get_dataset(config) -> datasets.ImageDataset:
    """The dataset `config.dataset` names (CIFAR read from `config.data_dir`)."""
    if config.dataset == "digits32":
        return datasets.load_digits32(seed=config.seed)
    if config.dataset == "synthetic":
        return datasets.synthetic_images(seed=config.seed)
    if config.dataset in ("cifar10", "cifar100"):
        if config.data_dir is None:
            raise ValueError(
                f"dataset {config.dataset!r} needs data_dir (--data-dir): the folder "
                f"holding the python-version archive from {datasets.CIFAR_URL}."
            )
        num_classes = int(config.dataset.removeprefix("cifar"))
        return datasets.load_cifar(config.data_dir, num_classes=num_classes)
    raise ValueError(
        "dataset must be one of 'digits32', 'synthetic', 'cifar10', 'cifar100', "
        f"got {config.dataset!r}."
    )


def augmentation(config):
    """Crop and flip; crop only for digits (a mirrored digit is another shape)."""
    flip = config.dataset != "digits32"
    return lambda key, images: datasets.augment(key, images, flip=flip)
