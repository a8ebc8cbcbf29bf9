"""Activation-aware initialisation keeps deep signals alive."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablegrad_optax as sgo
from stablegrad_optax import init
from stablegrad_optax.models import MLP


def _tanh_moments(q, n=200_001):
    """E[tanh(sqrt(q) z)^2] and E[tanh'(sqrt(q) z)^2] by a fine trapezoid rule."""
    z = np.linspace(-12.0, 12.0, n)
    density = np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    t = np.tanh(np.sqrt(q) * z)
    dz = z[1] - z[0]
    return np.sum(t**2 * density) * dz, np.sum((1 - t**2) ** 2 * density) * dz


def test_critical_point_for_tanh():
    weight_variance, q_star = init.critical_variances(jnp.tanh, 0.05)
    assert weight_variance == pytest.approx(1.761, abs=1e-3)
    assert q_star == pytest.approx(0.570, abs=1e-3)
    second, slope = _tanh_moments(q_star)
    assert weight_variance * second + 0.05 == pytest.approx(q_star, rel=1e-6)
    assert weight_variance * slope == pytest.approx(1.0, rel=1e-6)
    # As the bias variance vanishes, sigma_w^2 -> 1 and q* -> 0, slowly: near
    # q = 0 the fixed-point gap is cubic in q, so q* ~ (sigma_b^2)^(1/3).
    results = [init.critical_variances(jnp.tanh, b) for b in (1e-2, 1e-4, 1e-6, 1e-8)]
    weights = [w for w, _ in results]
    assert weights == sorted(weights, reverse=True)
    assert 1.0 < weights[-1] < 1.01
    w_small, q_small = results[-1]
    second, slope = _tanh_moments(q_small)
    assert w_small * second + 1e-8 == pytest.approx(q_small, rel=1e-5)
    assert w_small * slope == pytest.approx(1.0, rel=1e-6)


def _forward_stds(params, activation, x, depth):
    stds, h = [], x
    for i in range(depth):
        layer = params[f"hidden_{i}"]
        h = activation(h @ layer["kernel"] + layer["bias"][None, :])
        stds.append(float(jnp.std(h)))
    return stds


@pytest.mark.parametrize(
    ("activation", "name"),
    [
        pytest.param("tanh", "critical", marks=pytest.mark.slow),
        pytest.param("sin", "critical", marks=pytest.mark.slow),
        pytest.param("tanh", "critical_orthogonal", marks=pytest.mark.slow),
        pytest.param("sin", "critical_orthogonal", marks=pytest.mark.slow),
    ],
)
def test_depth_64_signal_and_gradients_stay_balanced(activation, name):
    act = {"tanh": jnp.tanh, "sin": jnp.sin}[activation]
    kernel_init, bias_init = init.get_initializers(name, act)
    model = MLP(
        depth=64,
        width=50,
        activation=activation,
        kernel_init=kernel_init,
        bias_init=bias_init,
    )
    x = jax.random.uniform(jax.random.key(1), (512, 2), minval=-1.0, maxval=1.0)
    params = model.init(jax.random.key(0), x)["params"]
    stds = _forward_stds(params, act, x, 64)
    assert 0.5 <= stds[-1] / stds[0] <= 2.0
    y = jnp.sin(jnp.pi * x[:, :1]) * jnp.sin(jnp.pi * x[:, 1:])
    grads = jax.grad(lambda p: jnp.mean((model.apply({"params": p}, x) - y) ** 2))(
        params
    )
    assert sgo.imbalance(sgo.layer_statistics(grads)).ratio < 100.0


def test_lecun_collapses_at_depth_64():
    model = MLP(depth=64, width=50)  # LeCun normal, zero biases
    x = jax.random.uniform(jax.random.key(1), (512, 2), minval=-1.0, maxval=1.0)
    params = model.init(jax.random.key(0), x)["params"]
    stds = _forward_stds(params, jnp.tanh, x, 64)
    assert stds[-1] / stds[0] < 0.25


def test_orthogonal_kernel_has_the_critical_gain():
    weight_variance, _ = init.critical_variances(jnp.tanh, 0.05)
    kernel_init, _ = init.get_initializers("critical_orthogonal", jnp.tanh)
    kernel = kernel_init(jax.random.key(0), (50, 50))
    singular = np.linalg.svd(np.asarray(kernel, np.float64), compute_uv=False)
    np.testing.assert_allclose(singular, np.sqrt(weight_variance), rtol=1e-5)


@pytest.mark.parametrize("name", ["lecun", "glorot", "he"])
def test_usual_initialisers(name):
    kernel_init, bias_init = init.get_initializers(name)
    assert kernel_init(jax.random.key(0), (20, 30)).shape == (20, 30)
    assert float(jnp.max(jnp.abs(bias_init(jax.random.key(0), (30,))))) == 0.0


def test_bad_initialiser_options():
    with pytest.raises(ValueError, match="init must be one of"):
        init.get_initializers("xavier")
    with pytest.raises(ValueError, match="bias_variance"):
        init.get_initializers("critical", jnp.tanh, bias_variance=0.0)
