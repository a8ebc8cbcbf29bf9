"""Performance contracts: no recompilation between steps, and what reads each leaf.

The compiled update of `stablegrad` alone must read every weight gradient in
at most two reductions (a sum and a sum of squares; XLA:CPU compiles them as
two library reductions, every one-pass formulation measured slower, see
`_statistic`) plus the one elementwise rescale, with no stacking copy of a large
leaf, no host callback, and the careful path only behind one `lax.cond`.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import load_script

import stablegrad_optax as sgo
from stablegrad_optax import _statistic

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"
LARGE, SMALL = (160, 160), (32, 32)  # one side of _STACK_MAX_SIZE each


@pytest.fixture(scope="module")
def hlo_reads():
    with pytest.MonkeyPatch.context() as patch:
        yield load_script(BENCHMARKS / "hlo_reads.py", "hlo_reads", patch)


def _tree(dtype=jnp.float32):
    rng = np.random.default_rng(0)

    def draw(shape):
        return jnp.asarray(rng.standard_normal(shape) * 1e-3 + 1e-4, dtype)

    tree = {
        f"big_{i}": {"kernel": draw(LARGE), "bias": draw(LARGE[1:])} for i in range(3)
    }
    tree.update({f"small_{i}": {"kernel": draw(SMALL)} for i in range(4)})
    tree["conv"] = {"kernel": draw((3, 3, 32, 64))}
    tree["head"] = {"kernel": draw((160, 1)), "bias": draw((1,))}
    return tree


class _Compiles:
    """Counts XLA backend compilations while active."""

    def __init__(self):
        self.count = 0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self)

    def __call__(self, event, duration, **kwargs):
        if self.active and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


COMPILES = _Compiles()


@pytest.mark.parametrize(
    "make, given",
    [
        (lambda: optax.chain(sgo.stablegrad(), optax.adam(1e-3)), False),
        (
            lambda: optax.chain(
                sgo.stablegrad("median", ema_decay=0.9), optax.sgd(0.1)
            ),
            False,
        ),
        (
            lambda: optax.inject_hyperparams(sgo.stablegrad_adam)(learning_rate=1e-3),
            False,
        ),
        (lambda: sgo.stablegrad("given"), True),
    ],
    ids=["stablegrad+adam", "median+ema+sgd", "inject_hyperparams", "given"],
)
def test_the_jitted_update_compiles_once(make, given):
    """New gradients (1e-30 ones: the careful path), state and reference: no retrace."""
    tx = make()
    params = _tree()
    update = jax.jit(tx.update)

    def step(state, scale, i):
        grads = jax.tree.map(lambda p: p * scale, params)
        kwargs = {"reference_scale": 0.5 + i} if given else {}
        _, state = update(grads, state, params, **kwargs)
        return jax.block_until_ready(state)

    state = step(tx.init(params), 1.0, 0)  # compiles here
    COMPILES.active, COMPILES.count = True, 0
    try:
        for i, scale in enumerate((2.0, 1e-30, 3.0), start=1):
            state = step(state, scale, i)
    finally:
        COMPILES.active = False
    assert COMPILES.count == 0


# The fusions XLA:CPU makes by default, which the HLO reader is written for
# (the suite's flags turn them off).
USERS_FUSIONS = {"xla_cpu_use_fusion_emitters": True}


def _compiled_text(tree):
    tx = sgo.stablegrad()
    lowered = jax.jit(tx.update, keep_unused=True).lower(tree, tx.init(tree), tree)
    return lowered.compile(USERS_FUSIONS).as_text()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_each_gradient_leaf_is_read_by_at_most_two_reductions(hlo_reads, dtype):
    tree = _tree(dtype)
    text = _compiled_text(tree)
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    reads = hlo_reads.leaf_reads(text, [x.shape for _, x in leaves])
    assert np.prod(LARGE) > _statistic._STACK_MAX_SIZE >= np.prod(SMALL)
    for (path, leaf), read in zip(leaves, reads, strict=True):
        name = jax.tree_util.keystr(path)
        # Conversions (bf16 -> f32) may come first as an elementwise kernel.
        passes = read["reductions"] + read["stacked"]
        if leaf.ndim < 2:  # a bias: rescaled, not measured
            assert passes == 0 and read["cond"] == 0, (name, read)
            continue
        assert read["other"] == 0, (name, read)
        if leaf.size > _statistic._STACK_MAX_SIZE:
            assert read["stacked"] == 0, (name, read)  # never copied into a stack
            if dtype == jnp.float32:
                assert read["reductions"] <= 2, (name, read)
                assert read["elementwise"] == 1, (name, read)  # the rescale
        else:
            assert read["stack_reductions"] <= 2 and read["reductions"] <= 2, (
                name,
                read,
            )
    counts = hlo_reads.entry_counts(text)
    assert counts["conditionals"] == 1
    assert "callback" not in text  # no host round-trip


def test_a_small_tree_compiles_to_a_handful_of_reductions(hlo_reads):
    """Stacking: 64 same-shaped layers give 2 reductions over the data (the sum
    and the sum of squares of the stack), not 128; the other reductions are
    on per-layer vectors, one of them handing each layer its factors."""
    tree = {f"layer_{i}": {"kernel": jnp.full((50, 50), 1.0 + i)} for i in range(64)}
    counts = hlo_reads.entry_counts(_compiled_text(tree))
    assert counts["reduction_fusions"] <= 5, counts


def test_the_leaf_reader_counts_what_it_should(hlo_reads):
    """The reader itself, on a function whose reads are known."""

    def f(x, y):
        return jnp.sum(x) + jnp.sum(x * x), x * 2.0, jnp.stack([y, y + 1.0])

    x, y = jnp.ones((256, 256)), jnp.ones((256, 256))
    text = jax.jit(f).lower(x, y).compile(USERS_FUSIONS).as_text()
    rx, ry = hlo_reads.leaf_reads(text, [x.shape, y.shape])
    assert 1 <= rx["reductions"] <= 2 and rx["elementwise"] >= 1
    assert ry["stacked"] >= 1 and ry["reductions"] == 0
