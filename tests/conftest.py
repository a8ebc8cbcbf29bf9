"""Strict JAX settings, the tiers' compiler settings and hypothesis profiles.

Two tiers: the README's bare ``pytest`` runs every test not marked ``slow``,
compiled at LLVM's -O0 (compilation is most of its time on CPU; the numbers are
the same computation's); ``pytest -m slow``, which `.ci/run` runs after it,
keeps XLA's default optimisation, under which its timings are taken.

Profiles: "default" (40 examples), "ci" (the same, derandomised; chosen when
CI is set) and "thorough" (1000 examples): HYPOTHESIS_PROFILE=thorough pytest.
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
# through a compilation cache private to this run: compile time is most of the
# suite's time on CPU. It starts empty, so timings stay cold-start.
_COMPILE_CACHE = tempfile.mkdtemp(prefix="sgo-jax-cache-")
atexit.register(shutil.rmtree, _COMPILE_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _COMPILE_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

FAST_COMPILE = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    """The quick tier compiles at -O0 unless XLA_FLAGS already sets a level.

    Runs before any test module is imported, so before JAX starts its CPU
    backend; subprocesses the tests start inherit the setting.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if config.getoption("markexpr") == "not slow" and "optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


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
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)
