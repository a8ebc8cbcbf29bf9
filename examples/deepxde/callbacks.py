"""StableGrad's per-layer statistics during DeepXDE training, and the backend check."""

from __future__ import annotations

import deepxde as dde
import jax
import numpy as np

import stablegrad_optax as sgo


def require_jax_backend() -> None:
    """Raises SystemExit with one line unless DeepXDE runs on its JAX backend."""
    name = dde.backend.backend_name
    if name != "jax":
        raise SystemExit(
            f"DeepXDE's backend is {name!r}, but StableGrad is an optax "
            "transformation and needs the JAX backend: set DDE_BACKEND=jax "
            "before importing deepxde (or run `python -m deepxde.backend.set_default"
            "_backend jax`)."
        )


def stablegrad_state(opt_state) -> sgo.StableGradState | None:
    """The first `StableGradState` inside an optimizer state, if any."""
    is_state = lambda x: isinstance(x, sgo.StableGradState)
    for node in jax.tree.leaves(opt_state, is_leaf=is_state):
        if is_state(node):
            return node
    return None


class LayerStatistics(dde.callbacks.Callback):
    """Every `every` iterations, StableGrad's per-layer gradient std, by layer.

    `records` holds one dict per logging step: the iteration, the reference
    scale, and the std of each layer's weight gradient before the rescale
    (names as in `sgo.layer_names`, e.g. ``0/params/denses_3``; DeepXDE hands
    the optimizer ``[network parameters, external variables]``).
    """

    def __init__(self, every: int = 100):
        super().__init__()
        require_jax_backend()
        self.every = every
        self.records: list[dict] = []
        self.names: list[str] = []

    def on_train_begin(self):
        if stablegrad_state(self.model.opt_state) is None:
            raise ValueError(
                "LayerStatistics needs a StableGrad optimizer: compile the model "
                "with e.g. stablegrad_optax.stablegrad_adam(1e-3)."
            )
        self.names = sgo.layer_names(self.model.params)

    def on_epoch_end(self):
        step = self.model.train_state.step
        if step % self.every:
            return
        state = stablegrad_state(self.model.opt_state)
        stats = np.asarray(state.stats)
        self.records.append(
            {
                "step": int(step),
                "reference": float(state.reference),
                "std": dict(zip(self.names, stats.tolist(), strict=True)),
            }
        )
