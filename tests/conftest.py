"""Strict JAX settings, the tiers' compiler settings and hypothesis profiles.

Two tiers, both compiled fast: LLVM's -O0 and XLA:CPU's loop emitters
(compilation is most of the suite's time on CPU; the numbers are the same
computation's; no test asserts a time):
the README's bare ``pytest`` runs every test not marked ``slow``, its property
tests on 10 examples each; ``pytest -m "slow or hypothesis"``, which `.ci/run`
runs after it, runs the slow tests and every property test on 40 examples.

Profiles: "quick" (10 examples: the quick tier's), "default" (40), "ci" (the
chosen profile, derandomised, when CI is set) and "thorough" (1000 examples):
HYPOTHESIS_PROFILE=thorough pytest.
"""

import atexit
import os
import shutil
import tempfile

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_rank_promotion", "raise")

# Tests that compile the same computation again (a resumed benchmark re-running
# its last batch, raw and typed keys of one training run) share the executable
# through a compilation cache private to this run, and to its xdist workers,
# which inherit the variable: compile time is most of the suite's time on CPU.
# It starts empty, so timings stay cold-start.
if "SGO_TEST_COMPILE_CACHE" not in os.environ:
    os.environ["SGO_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="sgo-jax-cache-")
    atexit.register(
        shutil.rmtree, os.environ["SGO_TEST_COMPILE_CACHE"], ignore_errors=True
    )
jax.config.update("jax_compilation_cache_dir", os.environ["SGO_TEST_COMPILE_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

# LLVM's -O0, and XLA:CPU's loop emitters in place of its fusion emitters:
# together they compile the examples' training steps about 3x faster.
FAST_COMPILE = (
    "--xla_backend_optimization_level=0",
    "--xla_cpu_use_fusion_emitters=false",
)


def pytest_configure(config):
    """Compile fast unless XLA_FLAGS already sets a level; the quick tier
    takes the "quick" hypothesis profile unless HYPOTHESIS_PROFILE names one.

    Runs before any test module is imported, so before JAX starts its CPU
    backend; subprocesses the tests start (notebook kernels, examples) inherit
    the setting.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    # The 8-device suite compares sharded with one-device numbers at tolerances
    # set under XLA's defaults.
    if "optimization_level" not in flags and not os.environ.get("SGO_SHARDED_SUITE"):
        os.environ["XLA_FLAGS"] = " ".join([flags, *FAST_COMPILE]).strip()
    quick = config.getoption("markexpr") == "not slow"
    if quick and "HYPOTHESIS_PROFILE" not in os.environ:
        settings.load_profile("quick-ci" if os.environ.get("CI") else "quick")


# tests/sharded/ needs 8 devices: test_sharding.py runs it in a subprocess that
# has them and sets this variable.
collect_ignore = [] if os.environ.get("SGO_SHARDED_SUITE") else ["sharded"]

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", parent=settings.get_profile("default"), derandomize=True
)
settings.register_profile(
    "thorough", parent=settings.get_profile("default"), max_examples=1000
)
settings.register_profile(
    "quick", parent=settings.get_profile("default"), max_examples=10
)
settings.register_profile(
    "quick-ci", parent=settings.get_profile("quick"), derandomize=True
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)
