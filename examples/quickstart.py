"""Quickstart: StableGrad before Adam on a deep tanh MLP.

StableGrad rescales every layer's gradient to a common reference std before
the optimizer sees it. Here a 16-hidden-layer tanh MLP fits
``y = sin(3 x1) cos(2 x2)`` on ``[-1, 1]^2``, full batch, twice:

1. ``optax.chain(sgo.stablegrad(), optax.adam(1e-3))``: the reference is the
   std of the output layer's weight gradient (the default, ``"output"``);
2. the paper's reference, the std of dL/d(prediction):
   ``sgo.prediction_value_and_grad`` returns it from the step's own backward
   pass, and ``stablegrad(reference="prediction")`` takes it as
   ``reference_scale`` at every update.

  python examples/quickstart.py     # a few seconds on a CPU

Optimizers compared on this task: ``benchmarks/mlp_regression.py``; on deep
PINNs: ``examples/pinn/``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import stablegrad_optax as sgo
from stablegrad_optax.models import MLP

model = MLP(depth=16, width=32)  # layers hidden_0 .. hidden_15, then head


def make_batch(key: jax.Array, size: int = 512) -> dict[str, jax.Array]:
    x = jax.random.uniform(key, (size, 2), minval=-1.0, maxval=1.0)
    return {"x": x, "y": jnp.sin(3 * x[:, :1]) * jnp.cos(2 * x[:, 1:])}


def predict(params, batch):
    return model.apply({"params": params}, batch["x"])


def mse(prediction, batch):
    return jnp.mean((prediction - batch["y"]) ** 2)


def output_reference(params, batch):
    """Loss and gradients; StableGrad needs nothing more for its default."""
    loss, grads = jax.value_and_grad(lambda p: mse(predict(p, batch), batch))(params)
    return loss, grads, {}


def prediction_reference(params, batch):
    """Loss, gradients and the std of dL/d(prediction), from one backward pass."""
    loss, grads, scale = sgo.prediction_value_and_grad(predict, mse)(params, batch)
    return loss, grads, {"reference_scale": scale}


def fit(tx, loss_and_grads, params, batch, steps: int) -> list[float]:
    """`steps` full-batch steps of `tx`; returns the loss before each step."""

    @jax.jit
    def train_step(params, opt_state):
        loss, grads, extra = loss_and_grads(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = tx.init(params)
    losses = []
    for step in range(steps):
        params, opt_state, loss = train_step(params, opt_state)
        losses.append(float(loss))
        if step % 100 == 0 or step == steps - 1:
            print(f"  step {step:4d}  loss {losses[-1]:.3e}")
    return losses


def main(steps: int = 500) -> dict[str, list[float]]:
    data_key, init_key = jax.random.split(jax.random.key(0))
    batch = make_batch(data_key)
    params = model.init(init_key, batch["x"])["params"]

    # How far apart the layers' gradient stds start: what StableGrad evens out.
    _, grads, _ = output_reference(params, batch)
    spread = sgo.imbalance(sgo.layer_statistics(grads))
    print(f"gradient std, largest / smallest layer at init: {spread.ratio:.1f}")

    print("StableGrad (reference: the output layer) + Adam")
    tx = optax.chain(sgo.stablegrad(), optax.adam(1e-3))
    output = fit(tx, output_reference, params, batch, steps)

    print("StableGrad (reference: the prediction, the paper's) + Adam")
    tx = optax.chain(sgo.stablegrad(reference="prediction"), optax.adam(1e-3))
    paper = fit(tx, prediction_reference, params, batch, steps)
    return {"output": output, "prediction": paper}


if __name__ == "__main__":
    main()
