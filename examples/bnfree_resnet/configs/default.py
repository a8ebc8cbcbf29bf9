"""The default run: a BatchNorm-free ResNet-18 (width 8) on digits-32, SGD 0.1.

Every other configuration imports this one and overrides a few fields with
`dataclasses.replace`.

The optimizer is SGD with momentum at the usual CIFAR learning rate (0.1) and
weight decay, the same for every variant: the point is whether a variant
survives that setting, not the best learning rate of each.
"""

from __future__ import annotations

import dataclasses

# The default run's variants (`train.VARIANTS` defines every variant).
VARIANTS = (
    "bn",
    "none",
    "none+stablegrad",
    "none+stablegrad(prediction)",
    "skipinit",
    "none+agc",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run depends on.

    Attributes:
      model: "resnet18", "resnet34", "resnet50" or "effnet-tiny".
      width: first-stage filters of the ResNet (64 is the standard net).
      dataset: "digits32", "synthetic", "cifar10" or "cifar100".
      data_dir: where the CIFAR archive is (nothing is downloaded).
      variants: names from `train.VARIANTS`: "bn" (BatchNorm), "none" (removed),
        "none+stablegrad" (removed, StableGrad with `reference` before SGD),
        "none+stablegrad(prediction)" (removed, StableGrad with the paper's
        reference, the std of dL/dlogits, before SGD), "skipinit" (removed,
        zero-initialised residual gains), "none+agc" (removed, adaptive
        gradient clipping before SGD).
      learning_rate: SGD's learning rate.
      momentum: SGD's momentum.
      weight_decay: added to the gradient (after StableGrad or AGC).
      agc_clipping: clipping ratio of `optax.adaptive_grad_clip`.
      reference: StableGrad's `reference` in "none+stablegrad": "output" (the
        output layer's weight-gradient std), "prediction" (the paper's: the
        std of dL/dlogits, passed at every step), "geometric_mean", ...
      batch_size: images per step.
      steps: optimisation steps per variant.
      log_every: steps per log record (one host sync each).
      seed: seeds the initial parameters, the batches and the augmentation.
      progress: show a tqdm progress bar.
    """

    model: str = "resnet18"
    width: int = 8
    dataset: str = "digits32"
    data_dir: str | None = None
    variants: tuple[str, ...] = VARIANTS
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    agc_clipping: float = 0.01
    reference: str = "output"
    batch_size: int = 32
    steps: int = 150
    log_every: int = 25
    seed: int = 0
    progress: bool = True


def get_config() -> Config:
    return Config()
