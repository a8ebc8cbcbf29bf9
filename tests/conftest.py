"""Strict JAX settings and hypothesis profiles for the test suite.

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
