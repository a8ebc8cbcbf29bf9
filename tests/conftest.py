"""Strict JAX settings and hypothesis profiles for the test suite.

Profiles: "default" (40 examples), "ci" (the same, derandomised; chosen when
CI is set) and "thorough" (1000 examples): HYPOTHESIS_PROFILE=thorough pytest.
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_numpy_rank_promotion", "raise")

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
