"""`prediction_value_and_grad` and `stablegrad("prediction")` in every framework."""

import pathlib
import runpy

import equinox as eqx
import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state
from helpers import MLP, std64

import stablegrad_optax as sgo

SNIPPETS = pathlib.Path(__file__).parents[1] / "docs" / "snippets"
X = jax.random.normal(jax.random.key(0), (32, 2))
Y = jnp.sin(2 * X[:, :1]) * X[:, 1:]


def squared(y, x, target):
    del x
    return jnp.mean((y - target) ** 2)


class ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


def _linen_mlp():
    model = MLP(depth=3, width=8)
    params = model.init(jax.random.key(1), X)["params"]
    return params, lambda p, x, target: model.apply({"params": p}, x)


def _conv():
    model = ConvNet()
    images = jax.random.normal(jax.random.key(2), (6, 8, 8, 2))
    labels = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    params = model.init(jax.random.key(3), images)["params"]

    def predict(p, x, target):
        return model.apply({"params": p}, x)

    return params, predict, images, labels


def _pytree_prediction():
    params, apply = _linen_mlp()

    def predict(p, x, target):
        y = apply(p, x, target)
        return {"value": y[:, 0], "slope": {"x0": jnp.tanh(y[:, 0]) * x[:, 0]}}

    def loss(pred, x, target):
        fit = jnp.mean((pred["value"] - target[:, 0]) ** 2)
        return fit + 0.1 * jnp.mean(pred["slope"]["x0"] ** 2)

    return params, predict, loss


def _cases():
    params, predict = _linen_mlp()
    yield "mlp", params, predict, squared, (X, Y)
    params, predict, images, labels = _conv()

    def cross_entropy(logits, x, target):
        return optax.softmax_cross_entropy(logits, target).mean()

    yield "conv", params, predict, cross_entropy, (images, labels)
    params, predict, loss = _pytree_prediction()
    yield "pytree", params, predict, loss, (X, Y)


CASES = {name: rest for name, *rest in _cases()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_grads_equal_value_and_grad_of_the_composed_loss(name):
    params, predict, loss, args = CASES[name]
    value, grads, scale = jax.jit(sgo.prediction_value_and_grad(predict, loss))(
        params, *args
    )
    composed = jax.value_and_grad(lambda p, *a: loss(predict(p, *a), *a))
    expected_value, expected_grads = jax.jit(composed)(params, *args)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    for got, want in zip(
        jax.tree.leaves(grads), jax.tree.leaves(expected_grads), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # The reference is the std of a separately computed dL/d(prediction).
    cotangent = jax.grad(loss)(predict(params, *args), *args)
    assert scale.dtype == jnp.float32 and scale.shape == ()
    assert float(scale) == pytest.approx(std64(*jax.tree.leaves(cotangent)), rel=1e-5)


def _count(jaxpr, names) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name in names
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += _count(sub, names)
    return total


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_more_matrix_products_or_convolutions_than_value_and_grad(name):
    params, predict, loss, args = CASES[name]
    heavy = {"dot_general", "conv_general_dilated"}
    ours = jax.make_jaxpr(sgo.prediction_value_and_grad(predict, loss))(params, *args)
    composed = jax.value_and_grad(lambda p, *a: loss(predict(p, *a), *a))
    theirs = jax.make_jaxpr(composed)(params, *args)
    assert _count(theirs.jaxpr, heavy) > 0
    assert _count(ours.jaxpr, heavy) <= _count(theirs.jaxpr, heavy)


def test_reference_on_selects_parts_of_a_pytree_prediction():
    params, predict, loss, args = CASES["pytree"]
    cotangent = jax.grad(loss)(predict(params, *args), *args)
    by_mask = sgo.prediction_value_and_grad(
        predict, loss, reference_on={"value": True, "slope": False}
    )(params, *args)[2]
    by_callable = sgo.prediction_value_and_grad(
        predict, loss, reference_on=lambda pred: {"value": False, "slope": {"x0": True}}
    )(params, *args)[2]
    assert float(by_mask) == pytest.approx(std64(cotangent["value"]), rel=1e-5)
    assert float(by_callable) == pytest.approx(
        std64(cotangent["slope"]["x0"]), rel=1e-5
    )


def test_vmap_over_seeds_matches_each_seed_alone():
    model = MLP(depth=2, width=8)
    params = jax.vmap(lambda k: model.init(k, X)["params"])(
        jax.random.split(jax.random.key(0), 3)
    )

    def predict(p, x, target):
        return model.apply({"params": p}, x)

    fn = sgo.prediction_value_and_grad(predict, squared)
    values, grads, scales = jax.jit(jax.vmap(fn, in_axes=(0, None, None)))(params, X, Y)
    assert scales.shape == (3,)
    for i in range(3):
        one = jax.tree.map(lambda x, i=i: x[i], params)
        value, grad, scale = fn(one, X, Y)
        np.testing.assert_allclose(values[i], value, rtol=1e-6)
        np.testing.assert_allclose(scales[i], scale, rtol=1e-6)
        np.testing.assert_allclose(
            grads["Dense_0"]["kernel"][i],
            grad["Dense_0"]["kernel"],
            rtol=1e-5,
            atol=1e-7,
        )
    assert len(set(np.asarray(scales).tolist())) == 3


def test_aux_of_the_loss_and_of_predict_batch_norm_statistics():
    class BNNet(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = nn.Dense(8)(x)
            x = nn.BatchNorm(use_running_average=not train)(x)
            return nn.Dense(1)(jnp.tanh(x))

    model = BNNet()
    variables = model.init(jax.random.key(0), X, train=False)

    def predict(params, batch_stats, x, target):
        return model.apply(
            {"params": params, "batch_stats": batch_stats},
            x,
            train=True,
            mutable=["batch_stats"],
        )

    def loss(y, batch_stats, x, target):
        error = jnp.mean((y - target) ** 2)
        return error, {"error": error}

    fn = sgo.prediction_value_and_grad(
        predict, loss, has_aux=True, predict_has_aux=True
    )
    (value, (updates, aux)), grads, scale = jax.jit(fn)(
        variables["params"], variables["batch_stats"], X, Y
    )
    assert float(aux["error"]) == pytest.approx(float(value))
    mean = updates["batch_stats"]["BatchNorm_0"]["mean"]
    assert not np.allclose(mean, variables["batch_stats"]["BatchNorm_0"]["mean"])
    assert jax.tree.structure(grads) == jax.tree.structure(variables["params"])
    only_predict = sgo.prediction_value_and_grad(
        predict, lambda y, *rest: loss(y, *rest)[0], predict_has_aux=True
    )
    (value2, updates2), _, scale2 = only_predict(
        variables["params"], variables["batch_stats"], X, Y
    )
    assert float(value2) == pytest.approx(float(value), rel=1e-6)
    assert float(scale2) == pytest.approx(float(scale), rel=1e-6)
    only_loss = sgo.prediction_value_and_grad(
        lambda p, *rest: predict(p, *rest)[0], loss, has_aux=True
    )
    (value3, aux3), _, _ = only_loss(
        variables["params"], variables["batch_stats"], X, Y
    )
    assert set(aux3) == {"error"}


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.complex64])
def test_integer_or_complex_prediction_is_refused(dtype):
    def predict(p, x):
        return (x @ p).astype(dtype)

    with pytest.raises(ValueError, match=f"floating.*{jnp.dtype(dtype).name}"):
        sgo.prediction_value_and_grad(predict, lambda y, x: jnp.sum(y).real)(
            jnp.ones((2, 1)), X
        )


@pytest.mark.parametrize(
    ("reference_on", "match"),
    [
        ({"value": False, "slope": False}, "selects no part"),
        ({"value": 1, "slope": True}, "Python bools"),
        ({"other": True}, "structure of the prediction"),
        ({}, "at least one part"),
    ],
)
def test_bad_reference_on_is_refused(reference_on, match):
    params, predict, loss, args = CASES["pytree"]
    with pytest.raises(ValueError, match=match):
        sgo.prediction_value_and_grad(predict, loss, reference_on=reference_on)(
            params, *args
        )


def test_a_prediction_gradient_of_zero_keeps_the_gradients_unchanged():
    params, predict = _linen_mlp()
    target = predict(params, X, None)
    value, grads, scale = sgo.prediction_value_and_grad(predict, squared)(
        params, X, target
    )
    assert float(value) == 0.0 and float(scale) == 0.0
    tx = sgo.stablegrad("prediction")
    updates, state = tx.update(grads, tx.init(params), reference_scale=scale)
    assert bool(state.stale_reference)
    np.testing.assert_array_equal(state.factors, 1.0)


def test_tiny_and_huge_prediction_gradients_give_their_std():
    params, predict = _linen_mlp()
    for factor in (1e-30, 1e30):

        def loss(y, x, target, factor=factor):
            return factor * jnp.mean(y - target)

        _, _, scale = sgo.prediction_value_and_grad(predict, loss)(params, X, Y)
        # dL/dy = factor / N for every entry: std 0, never NaN.
        assert float(scale) == 0.0

        def spread(y, x, target, factor=factor):
            return factor * jnp.mean(y * target)

        _, _, scale = sgo.prediction_value_and_grad(predict, spread)(params, X, Y)
        expected = factor * np.std(np.asarray(Y, np.float64)) / len(Y)
        assert float(scale) == pytest.approx(expected, rel=1e-5)


def _losses_fall(losses):
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]


def test_flax_nnx_recipe_optimizer_update_forwards_the_reference():
    """The documented NNX loop (docs/snippets/first_loop_nnx.py), driven further."""
    loop = runpy.run_path(str(SNIPPETS / "first_loop_nnx.py"))
    model = loop["MLP"](nnx.Rngs(2))  # a fresh start, the snippet's optimizer
    optimizer = nnx.Optimizer(model, loop["tx"], wrt=nnx.Param)
    step, x, y = loop["train_step"], loop["x"], loop["y"]

    _losses_fall([float(step(model, optimizer, x, y)) for _ in range(40)])
    # The reference of the next step: the std of dL/dy = 2 (y - target) / N there.
    residual = np.asarray(model(x), np.float64) - np.asarray(y, np.float64)
    scale = np.std(2 * residual / residual.size)
    step(model, optimizer, x, y)
    state = optax.tree_utils.tree_get(optimizer.opt_state, "StableGradState")
    assert float(state.reference) == pytest.approx(scale, rel=1e-4)


def test_flax_linen_recipe_with_tx_update():
    model = nn.Sequential([nn.Dense(16), jnp.tanh, nn.Dense(1)])
    params = model.init(jax.random.key(0), X)["params"]
    state = train_state.TrainState.create(
        apply_fn=model.apply,
        params=params,
        tx=sgo.stablegrad_adam(1e-2, reference="prediction"),
    )

    @jax.jit
    def train_step(state, x, y):
        def predict(params, x, y):
            return state.apply_fn({"params": params}, x)

        step = sgo.prediction_value_and_grad(predict, squared)
        loss, grads, scale = step(state.params, x, y)
        # apply_gradients does not forward extra arguments: call tx.update.
        updates, opt_state = state.tx.update(
            grads, state.opt_state, state.params, reference_scale=scale
        )
        params = optax.apply_updates(state.params, updates)
        state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return state, loss

    losses = []
    for _ in range(40):
        state, loss = train_step(state, X, Y)
        losses.append(float(loss))
    _losses_fall(losses)
    # apply_gradients itself cannot pass the reference, and says so.
    with pytest.raises(ValueError, match="reference_scale"):
        state.apply_gradients(grads=params)


def test_equinox_recipe_partition_and_combine():
    model = eqx.nn.MLP(2, 1, width_size=16, depth=2, key=jax.random.key(0))
    tx = sgo.stablegrad_adam(1e-2, reference="prediction")
    opt_state = tx.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(model, opt_state, x, y):
        params, static = eqx.partition(model, eqx.is_inexact_array)

        def predict(params, x, y):
            return jax.vmap(eqx.combine(params, static))(x)

        loss, grads, scale = sgo.prediction_value_and_grad(predict, squared)(
            params, x, y
        )
        updates, opt_state = tx.update(grads, opt_state, params, reference_scale=scale)
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    for _ in range(40):
        model, opt_state, loss = train_step(model, opt_state, X, Y)
        losses.append(float(loss))
    _losses_fall(losses)


def test_multi_steps_uses_the_reference_of_the_last_micro_batch():
    params, predict = _linen_mlp()
    step = sgo.prediction_value_and_grad(predict, squared)
    tx = optax.MultiSteps(optax.chain(sgo.stablegrad("prediction"), optax.sgd(1.0)), 2)
    state = tx.init(params)
    first = step(params, X[:16], Y[:16])
    second = step(params, X[16:], Y[16:])
    zero, state = tx.update(first[1], state, params, reference_scale=first[2])
    assert all(float(jnp.max(jnp.abs(u))) == 0 for u in jax.tree.leaves(zero))
    updates, state = tx.update(second[1], state, params, reference_scale=second[2])
    sg = optax.tree_utils.tree_get(state, "StableGradState")
    assert float(sg.reference) == pytest.approx(float(second[2]))
    assert std64(updates["Dense_1"]["kernel"]) == pytest.approx(
        float(second[2]), rel=1e-5
    )


@pytest.mark.slow
def test_lbfgs_after_stablegrad_cannot_take_the_reference():
    params, predict = _linen_mlp()
    value, grads, scale = sgo.prediction_value_and_grad(predict, squared)(params, X, Y)
    tx = optax.chain(sgo.stablegrad("prediction"), optax.lbfgs())
    with pytest.raises(TypeError, match="reference_scale"):
        tx.update(
            grads,
            tx.init(params),
            params,
            value=value,
            grad=grads,
            value_fn=lambda p: squared(predict(p, X, Y), X, Y),
            reference_scale=scale,
        )
