"""BatchNorm-free conv nets of `stablegrad_optax.models`: ResNets, EfficientNetV2."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablegrad_optax as sgo
from stablegrad_optax import models

CIFAR_BATCH = jnp.ones((2, 32, 32, 3))
# The default (threefry) key makes `init` of a conv net take seconds to compile
# on CPU; an rbg key builds the same shapes in a fraction of that.
KEY = jax.random.key(0, impl="rbg")
# Small nets of the same blocks (identity and projection shortcuts) keep compile
# times short; the presets themselves are checked by their parameter counts.
SMALL_BASIC = models.ResNet(
    stage_sizes=(2, 1), block_cls=models.ResNetBlock, num_classes=10, width=4
)
SMALL_BOTTLENECK = SMALL_BASIC.clone(block_cls=models.BottleneckResNetBlock)


def init_shapes(model, shape=(1, 224, 224, 3)):
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.ones(shape), train=False)
    )


def count(tree):
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def norm_channels(params):
    """Channels of every BatchNorm (each has a scale and a bias of that size)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(
        leaf.shape[0]
        for path, leaf in leaves
        if jax.tree_util.keystr(path).endswith("['scale']")
    )


def blocks(params):
    return [name for name in params if "_block" in name]


# torchvision's counts (BatchNorm scale and bias counted, running statistics not).
REFERENCE_COUNTS = [
    (models.ResNet18, 11_689_512),
    (models.ResNet34, 21_797_672),
    (models.ResNet50, 25_557_032),
    (models.EfficientNetV2S, 21_458_488),
]


@pytest.mark.parametrize(("model_fn", "expected"), REFERENCE_COUNTS)
def test_parameter_counts_match_the_standard_architectures(model_fn, expected):
    batch = init_shapes(model_fn(norm="batch"))
    assert count(batch["params"]) == expected
    assert set(batch) == {"params", "batch_stats"}
    # Without BatchNorm each normalised conv gets a bias of its width instead of
    # a scale and a bias; SkipInit adds one scalar per residual block.
    none = init_shapes(model_fn(norm="none"))
    assert set(none) == {"params"}
    assert count(none["params"]) == expected - norm_channels(batch["params"])
    skip = init_shapes(model_fn(norm="skipinit"))
    gains = [
        path
        for path, _ in jax.tree_util.tree_leaves_with_path(skip["params"])
        if "skip_gain" in jax.tree_util.keystr(path)
    ]
    assert count(skip["params"]) == count(none["params"]) + len(gains)
    if model_fn is not models.EfficientNetV2S:  # every ResNet block is residual
        assert len(gains) == len(blocks(skip["params"]))


def test_efficientnet_v2_s_is_within_one_percent_of_21_5_million():
    n = count(init_shapes(models.EfficientNetV2S())["params"])
    assert abs(n - 21.5e6) / 21.5e6 < 0.01


SHAPE_MODELS = {
    "basic-cifar": SMALL_BASIC.clone(stem="cifar"),
    "bottleneck-imagenet": SMALL_BOTTLENECK.clone(stem="imagenet"),
    "effnet-tiny": models.EfficientNetV2Tiny(num_classes=10),
}


@pytest.mark.parametrize(
    ("model", "norm"),
    [
        # The bigger nets compile slowly: one norm of each in the quick tier.
        pytest.param(
            model,
            norm,
            id=f"{name}-{norm}",
            marks=[pytest.mark.slow]
            if name != "basic-cifar" and norm != "skipinit"
            else [],
        )
        for name, model in SHAPE_MODELS.items()
        for norm in models.NORMS
    ],
)
def test_shapes_collections_and_the_output_layer(model, norm):
    model = model.clone(norm=norm)
    variables = jax.jit(lambda x: model.init(KEY, x))(CIFAR_BATCH)
    assert ("batch_stats" in variables) == (norm == "batch")
    apply = jax.jit(model.apply, static_argnames=("train", "mutable"))
    if norm == "batch":
        logits, updates = apply(variables, CIFAR_BATCH, mutable=("batch_stats",))
        assert set(updates) == {"batch_stats"}
        eval_logits = apply(variables, CIFAR_BATCH, train=False)
        assert eval_logits.shape == (2, 10)
    else:
        logits = apply(variables, CIFAR_BATCH)
        np.testing.assert_array_equal(
            logits, apply(variables, CIFAR_BATCH, train=False)
        )
    assert logits.shape == (2, 10)
    assert bool(jnp.all(jnp.isfinite(logits)))
    params = variables["params"]
    state = sgo.stablegrad().init(params)
    assert sgo.layer_names(params)[int(state.reference_index)] == "head"
    if norm != "batch":
        # every convolution carries a bias in place of BatchNorm's shift
        kernels = [
            path
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)
            if leaf.ndim == 4
        ]
        assert kernels
        for path in kernels:
            parent = params
            for key in path[:-1]:
                parent = parent[key.key]
            assert "bias" in parent, jax.tree_util.keystr(path)


SHORTCUT = {"conv_proj", "norm_proj", "skip_gain"}


def perturb_branches(params, seed=1):
    """Large random values in every residual branch that carries a SkipInit gain."""
    rng = np.random.default_rng(seed)
    noise = lambda leaf: 10 * rng.standard_normal(leaf.shape, np.float32)
    return {
        name: {
            part: value if part in SHORTCUT else jax.tree.map(noise, value)
            for part, value in block.items()
        }
        if "skip_gain" in block
        else block
        for name, block in params.items()
    }


@pytest.mark.parametrize(
    "model",
    [
        SMALL_BASIC.clone(stem="cifar", norm="skipinit"),
        SMALL_BOTTLENECK.clone(norm="skipinit"),
        pytest.param(
            models.EfficientNetV2Tiny(num_classes=10, norm="skipinit"),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["basic", "bottleneck", "effnet-tiny"],
)
def test_skipinit_at_init_computes_exactly_the_shortcut_path(model):
    x = np.random.default_rng(2).standard_normal(CIFAR_BATCH.shape, np.float32)
    params = jax.jit(model.init)(KEY, x)["params"]
    apply = jax.jit(lambda p: model.apply({"params": p}, x))
    gated = [name for name, value in params.items() if "skip_gain" in value]
    assert gated
    perturbed = perturb_branches(params)
    assert jax.tree.structure(perturbed) == jax.tree.structure(params)
    changed = [
        jax.tree_util.keystr(path)
        for (path, a), b in zip(
            jax.tree_util.tree_leaves_with_path(params),
            jax.tree.leaves(perturbed),
            strict=True,
        )
        if not np.array_equal(a, b)
    ]
    assert len(changed) >= 2 * len(gated)
    np.testing.assert_array_equal(apply(perturbed), apply(params))
    # With gains at 1/sqrt(depth) the branches are live: the same change shows.
    live = model.clone(skipinit_init="inverse_sqrt_depth")
    live_params = jax.jit(live.init)(KEY, x)["params"]
    gains = [float(live_params[name]["skip_gain"]["gain"]) for name in gated]
    np.testing.assert_allclose(gains, 1 / math.sqrt(len(gated)))
    # (the gains' init is all that differs, so the same forward applies)
    assert not np.allclose(apply(perturb_branches(live_params)), apply(live_params))


def test_norm_none_without_skipinit_differs_from_the_shortcut_path():
    x = np.random.default_rng(2).standard_normal(CIFAR_BATCH.shape, np.float32)
    outputs = []
    for norm in ("none", "skipinit"):
        model = SMALL_BASIC.clone(norm=norm)
        outputs.append(jax.jit(model.init_with_output)(KEY, x)[0])
    assert not np.allclose(*outputs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norm": "layer"}, "norm must be one of"),
        ({"norm": "skipinit", "skipinit_init": "one"}, "skipinit_init must be one of"),
        ({"stem": "tiny"}, "stem must be one of"),
        ({"width": 0}, "width"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(models.ResNet18(**kwargs).init, jax.random.key(0), CIFAR_BATCH)


def test_efficientnet_bad_norm_raises():
    with pytest.raises(ValueError, match="norm must be one of"):
        model = models.EfficientNetV2Tiny(norm="group")
        jax.eval_shape(model.init, jax.random.key(0), CIFAR_BATCH)
