"""Checks of numeric options: at construction, or skipped while traced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def concrete_float(value: Any) -> float | None:
    """`float(value)` when it is known now; None for a tracer (inject_hyperparams)."""
    if isinstance(value, jax.core.Tracer):
        return None
    return float(value)


def is_number(value: Any) -> bool:
    """A Python or array number (a bool is not one)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.number)


def validate_number(name: str, value: Any, ok: Callable[[float], bool], accepted: str):
    """`ValueError` naming `name` and what is `accepted` unless `ok(value)`.

    A scalar number is required; its value is checked only when concrete (a
    traced hyperparameter under `optax.inject_hyperparams` passes).
    """
    if not is_number(value) or jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be {accepted}, got {value!r}.")
    number = concrete_float(value)
    if number is not None and not ok(number):
        raise ValueError(f"{name} must be {accepted}, got {number!r}.")
