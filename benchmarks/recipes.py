"""The recipes the benchmarks compare: one registry, one entry per name.

A name is a key, never parsed: its entry holds all that builds it, so adding a
baseline is adding an entry. `RECIPES` (the PINN depth sweep, its campaigns and
the MLP regression; the reports list them in its order) and `VARIANTS` (the
BatchNorm-free stress test).
"""

from __future__ import annotations

import functools
import pathlib
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import optax

import stablegrad_optax as sgo

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import AGC_CLIP, agc_adam  # noqa: E402

MOMENTUM = 0.9
WARMUP_FRACTION = 0.1  # jaxpi's linear warmup, as a fraction of the run
DECAY_TO = 0.1  # the exponential decays end at this fraction of the peak

Schedule = Callable[[int], optax.Schedule]  # steps of the run -> factor(count)


def _decay(steps: int, to: float = DECAY_TO) -> optax.Schedule:
    """Exponential decay from 1 to `to` over the run."""
    return optax.exponential_decay(1.0, transition_steps=steps, decay_rate=to)


def _warmup_decay(steps: int) -> optax.Schedule:
    """jaxpi's schedule: linear warmup over 10% of the run, then decay to 10%."""
    warmup = max(1, round(WARMUP_FRACTION * steps))
    return optax.warmup_exponential_decay_schedule(
        init_value=0.0,
        peak_value=1.0,
        warmup_steps=warmup,
        transition_steps=max(1, steps - warmup),
        decay_rate=DECAY_TO,
    )


class Recipe(NamedTuple):
    """How a benchmark builds one optimizer, and how reports read it."""

    make: Callable[[Any], optax.GradientTransformation]  # lr -> transformation
    style: tuple[str, str]  # the figures' (colour, marker)
    grid: str = "adaptive"  # the learning-rate grid family: "adaptive" or "sgd"
    # If set, `pinn.train` passes `reference_scale=` at every step: the std of
    # dL/d(prediction) under this reading (`pinn.PREDICTION_READINGS`).
    prediction_reference: str | None = None
    # If set, the lr is the grid's lr times this schedule (of the run's length).
    schedule: Schedule | None = None
    # `pinn.train`'s loss_weighting (None: the problem's fixed term weights).
    loss_weighting: str | None = None
    # The recipe the reports judge this one against (None: not judged).
    base: str | None = None

    def build(self, steps: int) -> Callable[[Any], optax.GradientTransformation]:
        """lr -> transformation for a run of `steps` (for inject_hyperparams)."""
        if self.schedule is None:
            return self.make
        shape = self.schedule(steps)
        return lambda learning_rate: self.make(lambda n: learning_rate * shape(n))


def _sgd(learning_rate) -> optax.GradientTransformation:
    return optax.sgd(learning_rate, momentum=MOMENTUM)


def _after(first: Callable[[], optax.GradientTransformation], inner):
    """lr -> ``optax.chain(first(), inner(lr))``."""
    return lambda learning_rate: optax.chain(first(), inner(learning_rate))


def _stablegrad(reference="output", **options):
    return lambda: sgo.stablegrad(reference, **options)


def _one_group(path) -> str:
    """Every layer in one group: the same global factor for all of them."""
    return "all"


def _paper(base: str, style, reading="data", *, group_by=None, **fields) -> Recipe:
    """The paper's StableGrad (prediction reference), then Adam."""
    options = {"group_by": group_by} if group_by else {}  # else StableGrad's own
    make = _after(_stablegrad("prediction", **options), optax.adam)
    return Recipe(make, style, prediction_reference=reading, base=base, **fields)


# The core of the field's recipe (jaxpi): warmup schedule, grad-norm loss weighting.
_STANDARD = {"schedule": _warmup_decay, "loss_weighting": "grad_norm"}

# In the reports' order: the paper's variant, its baselines, its readings and
# ablations, the other references (the default first), the other optimizers,
# the field's recipe. Styles: the variants of a recipe share its colour;
# markers: o plain, s decay, D warmup and decay, P gradient-norm loss weighting,
# v ^ the others.
RECIPES: dict[str, Recipe] = {
    # The paper's reference, read as u at the data points (boundary, initial).
    "stablegrad(prediction)+adam": _paper("adam", ("tab:red", "o")),
    # Adam, and with the schedules PINN codes use: exponential decay to 10% (or
    # 1%) of the peak over the run, and a 10% linear warmup before it; AGC.
    "adam": Recipe(optax.adam, ("tab:blue", "o")),
    "adam+decay": Recipe(optax.adam, ("tab:cyan", "s"), schedule=_decay),
    "adam+decay(1%)": Recipe(
        optax.adam, ("tab:cyan", "v"), schedule=functools.partial(_decay, to=0.01)
    ),
    "adam+warmup+decay": Recipe(optax.adam, ("tab:olive", "D"), schedule=_warmup_decay),
    "agc+adam": Recipe(agc_adam, ("tab:green", "o")),
    # The paper's with the lr decayed as adam+decay's: more than a schedule?
    "stablegrad(prediction)+adam+decay": _paper(
        "adam+decay", ("tab:purple", "s"), schedule=_decay
    ),
    # The other readings of a PINN's prediction: u at every point (direct
    # dependence only), and every output the loss reads (derivatives too).
    "stablegrad(prediction-values)+adam": _paper("adam", ("tab:red", "v"), "values"),
    "stablegrad(prediction-all)+adam": _paper("adam", ("tab:red", "^"), "all"),
    # Ablation: the prediction reference with every layer in one group (one
    # global factor, no per-layer normalisation).
    "stablegrad(prediction-global)+adam": _paper(
        "adam", ("tab:pink", "o"), group_by=_one_group
    ),
    # StableGrad's references that need nothing from the loop, then Adam.
    "stablegrad+adam": Recipe(
        _after(_stablegrad("output"), optax.adam), ("tab:orange", "o"), base="adam"
    ),
    "stablegrad(geometric_mean)+adam": Recipe(
        _after(_stablegrad("geometric_mean"), optax.adam),
        ("tab:brown", "o"),
        base="adam",
    ),
    "adamw": Recipe(optax.adamw, ("tab:blue", "v")),
    "lamb": Recipe(optax.lamb, ("tab:blue", "^")),
    "sgd-momentum": Recipe(_sgd, ("tab:gray", "o"), "sgd"),
    "stablegrad+sgd-momentum": Recipe(
        _after(_stablegrad("output"), _sgd), ("black", "o"), "sgd", base="sgd-momentum"
    ),
    # The field's recipe, alone, with the paper's StableGrad and with AGC.
    "adam+warmup+decay+gradnorm": Recipe(optax.adam, ("tab:olive", "P"), **_STANDARD),
    "stablegrad(prediction)+adam+warmup+decay": _paper(
        "adam+warmup+decay", ("tab:purple", "D"), schedule=_warmup_decay
    ),
    "stablegrad(prediction)+adam+warmup+decay+gradnorm": _paper(
        "adam+warmup+decay+gradnorm", ("tab:purple", "P"), **_STANDARD
    ),
    "agc+adam+warmup+decay+gradnorm": Recipe(agc_adam, ("tab:green", "P"), **_STANDARD),
    # A constant reference: per-layer normalised SGD, whose step does not
    # follow the loss scale, so it shares Adam's grid.
    "stablegrad(1)+sgd-momentum": Recipe(
        _after(_stablegrad(1.0), _sgd), ("black", "v"), base="sgd-momentum"
    ),
}


class Variant(NamedTuple):
    """A BN-free variant: the model's `norm` and what runs before the optimizer."""

    norm: str  # a `stablegrad_optax.models.NORMS` entry
    before: Callable[[], optax.GradientTransformation] | None = None
    # Whether the step passes the std of dL/dlogits (`reference_scale=`).
    prediction: bool = False


# StableGrad's references in the stress test (plain ``+stablegrad``: "output").
REFERENCES = ("output", "geometric_mean", "mean", "median", "max", "prediction")


def _variants() -> dict[str, Variant]:
    variants = {
        "bn": Variant("batch"),
        "none": Variant("none"),
        "skipinit": Variant("skipinit"),
        "none+agc": Variant("none", lambda: optax.adaptive_grad_clip(AGC_CLIP)),
    }
    for norm in ("none", "skipinit"):
        variants[f"{norm}+stablegrad"] = Variant(norm, _stablegrad("output"))
        for reference in REFERENCES:
            variants[f"{norm}+stablegrad({reference})"] = Variant(
                norm, _stablegrad(reference), prediction=reference == "prediction"
            )
    return variants


VARIANTS: dict[str, Variant] = _variants()
