"""The quickstart trains with both references; the paper's is std(dL/dprediction)."""

import math
import pathlib

import jax
import jax.numpy as jnp
import pytest
from helpers import load_script

QUICKSTART = pathlib.Path(__file__).parents[1] / "examples" / "quickstart.py"


@pytest.fixture
def quickstart(monkeypatch):
    return load_script(QUICKSTART, "quickstart", monkeypatch)


def test_quickstart_trains_and_prints_the_loss(quickstart, capsys):
    losses = quickstart.main(steps=30)
    assert set(losses) == {"output", "prediction"}
    for curve in losses.values():
        assert len(curve) == 30 and all(math.isfinite(v) for v in curve)
        assert curve[-1] < curve[0]
    assert losses["output"][0] == losses["prediction"][0]  # same start
    printed = capsys.readouterr().out
    assert "largest / smallest layer at init" in printed
    assert printed.count("step   29  loss") == 2


def test_the_paper_reference_is_the_std_of_dloss_dprediction(quickstart):
    batch = quickstart.make_batch(jax.random.key(1), size=16)
    params = quickstart.model.init(jax.random.key(2), batch["x"])["params"]
    loss, grads, extra = quickstart.prediction_reference(params, batch)
    prediction = quickstart.predict(params, batch)
    expected = jnp.std(jax.grad(quickstart.mse)(prediction, batch))
    assert float(extra["reference_scale"]) == pytest.approx(float(expected), rel=1e-5)
    # The same loss and gradients as the default reference's plain backward pass.
    plain_loss, plain_grads, nothing = quickstart.output_reference(params, batch)
    assert nothing == {} and float(loss) == pytest.approx(float(plain_loss))
    close = jax.tree.map(lambda a, b: jnp.allclose(a, b, atol=1e-6), grads, plain_grads)
    assert jax.tree.all(close)
