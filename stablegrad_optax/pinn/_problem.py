"""What every PDE problem offers: domain, samplers, residual, losses, error."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

ScalarField = Callable[[jax.Array], jax.Array]  # one point (d,) -> scalar


def directional_derivatives(
    u: ScalarField, point: jax.Array, direction: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """u, its first and its second derivative along `direction` at one point.

    Forward mode over forward mode (two nested `jax.jvp`): for a network with a
    few inputs this is several times cheaper than `jax.hessian` (reverse mode
    inside forward mode), and it is all a residual with u_x and u_xx needs.

    Args:
      u: a scalar field, one point (d,) -> scalar.
      point: the point, shape (d,).
      direction: the direction, shape (d,) (a unit axis gives partial
        derivatives).

    Returns:
      (u(point), D_v u(point), D_v^2 u(point)) for v = `direction`, scalars.

    Examples:
      >>> import jax.numpy as jnp
      >>> from stablegrad_optax import pinn
      >>> u = lambda p: p[0] ** 3 + p[0] * p[1]
      >>> values = pinn.directional_derivatives(u, jnp.array([2.0, 1.0]),
      ...                                       jnp.array([1.0, 0.0]))
      >>> [float(v) for v in values]  # u, u_x = 3x^2 + y, u_xx = 6x
      [10.0, 13.0, 12.0]
    """

    def along(p):
        return jax.jvp(u, (p,), (direction,))

    (value, first), (_, second) = jax.jvp(along, (point,), (direction,))
    return value, first, second


def relative_l2(
    prediction: jax.typing.ArrayLike, reference: jax.typing.ArrayLike
) -> jax.Array:
    r"""The relative L2 error of predictions at N points, one per leading index.

    .. math::

      e = \frac{\lVert \text{prediction} - \text{reference} \rVert_2}
               {\lVert \text{reference} \rVert_2},

    the norms over the N points, in float32. A batch of predictions (one per
    seed, say) against the same reference gives one error each.

    Args:
      prediction: the predicted values, shape (..., N) or (..., N, 1) (a
        network's ``(N, 1)`` output as it comes); leading axes are a batch.
      reference: the reference values at the same N points, shape (N,) or
        (N, 1).

    Returns:
      One error per leading index, float32 of shape (...) (a scalar for one
      prediction).

    Raises:
      ValueError: if the prediction's trailing axes are not N (or N, 1).

    Examples:
      >>> import jax.numpy as jnp
      >>> from stablegrad_optax import pinn
      >>> reference = jnp.array([3.0, 4.0])
      >>> float(pinn.relative_l2(jnp.array([[3.0], [4.0]]), reference))
      0.0
      >>> pinn.relative_l2(jnp.array([[0.0, 0.0], [3.0, 4.5]]), reference)
      Array([1. , 0.1], dtype=float32)
    """
    reference = jnp.ravel(jnp.asarray(reference, jnp.float32))
    prediction = jnp.asarray(prediction, jnp.float32)
    (n,) = reference.shape
    if prediction.shape[-1:] != (n,):
        if prediction.shape[-2:] != (n, 1):
            raise ValueError(
                f"prediction of shape {prediction.shape} does not match the "
                f"reference's {n} points: expected shape (..., {n}) or "
                f"(..., {n}, 1)."
            )
        prediction = prediction[..., 0]
    error = prediction - jnp.broadcast_to(reference, prediction.shape)
    return jnp.linalg.norm(error, axis=-1) / jnp.linalg.norm(reference)


def uniform(key: jax.Array, n: int, lower, upper) -> jax.Array:
    """n points uniform in the box [lower, upper], shape (n, d)."""
    lower, upper = jnp.asarray(lower, jnp.float32), jnp.asarray(upper, jnp.float32)
    return jax.random.uniform(key, (n, lower.shape[0]), minval=lower, maxval=upper)


def box_boundary(key: jax.Array, n: int, lower, upper) -> jax.Array:
    """n points uniform on the faces of a box (each face equally likely)."""
    dim = len(lower)
    k_face, k_side, k_point = jax.random.split(key, 3)
    points = uniform(k_point, n, lower, upper)
    face = jax.random.randint(k_face, (n,), 0, dim)
    side = jax.random.bernoulli(k_side, 0.5, (n,))
    value = jnp.where(side, jnp.asarray(upper)[face], jnp.asarray(lower)[face])
    return points.at[jnp.arange(n), face].set(value.astype(jnp.float32))


def box_grid(lower, upper, resolution: int) -> np.ndarray:
    """A regular grid on the box, shape (resolution**d, d), last axis fastest."""
    axes = [
        np.linspace(lo, hi, resolution) for lo, hi in zip(lower, upper, strict=True)
    ]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=-1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Problem(abc.ABC):
    """A PDE on a box with Dirichlet data; subclasses fill in the physics.

    A subclass is a frozen dataclass that defines `exact` and two private
    hooks: ``_point_outputs(u, point)``, the dict of scalars the residual
    reads of `u` at one point (the value under ``"u"`` and each derivative
    under its own name, from one nested `jax.jvp`), and
    ``_residual_of(outputs, point)``, the residual from them. `residual`,
    `losses` and `loss` are built from those; `Problem` itself cannot be
    instantiated.

    Attributes:
      name: the problem's name.
      lower: lower corner of the domain, one entry per coordinate.
      upper: upper corner of the domain.
      residual_weight: weight of the residual term in `loss`.
      boundary_weight: weight of the boundary term in `loss`.
    """

    name: str = "problem"
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    residual_weight: float = 1.0
    boundary_weight: float = 1.0

    @property
    def dim(self) -> int:
        return len(self.lower)

    @abc.abstractmethod
    def exact(self, points: jax.typing.ArrayLike) -> jax.Array:
        """The solution at points of shape (N, d), shape (N,)."""

    @abc.abstractmethod
    def _point_outputs(self, u: ScalarField, point: jax.Array) -> dict[str, jax.Array]:
        """What the residual reads of `u` at one point (d,): ``"u"`` and derivatives.

        A dict of scalars: the value under ``"u"``, each derivative under its
        own name (``"u_xx"``, ``"laplacian"``); all from one nested `jax.jvp`.
        """

    @abc.abstractmethod
    def _residual_of(self, outputs: dict[str, jax.Array], point: jax.Array):
        """The PDE residual at one point from its `_point_outputs`."""

    def residual(self, u: ScalarField, point: jax.Array) -> jax.Array:
        """The PDE residual of `u` at one point (d,)."""
        return self._residual_of(self._point_outputs(u, point), point)

    def boundary_values(self, points: jax.Array) -> jax.Array:
        """Dirichlet data at boundary points, shape (N,)."""
        return self.exact(points)

    def sample_interior(self, key: jax.Array, n: int) -> jax.Array:
        return uniform(key, n, self.lower, self.upper)

    def sample_boundary(self, key: jax.Array, n: int) -> jax.Array:
        return box_boundary(key, n, self.lower, self.upper)

    def sample(self, key: jax.Array, num_interior: int, num_boundary: int) -> dict:
        """A batch of collocation points and the data on them."""
        k_in, k_bd = jax.random.split(key)
        boundary = self.sample_boundary(k_bd, num_boundary)
        return {
            "interior": self.sample_interior(k_in, num_interior),
            "boundary": boundary,
            "boundary_values": self.boundary_values(boundary),
        }

    def _data_terms(self) -> tuple[str, ...]:
        """The data terms: ``batch[name]`` points where u must equal
        ``batch[name + "_values"]``."""
        return ("boundary",)

    def _outputs(self, u: ScalarField, batch: dict) -> dict[str, dict[str, jax.Array]]:
        """Every network output the losses read, one array of shape (N,) each.

        ``{"values": {"interior": ..., "boundary": ..., ...}, "derivatives":
        {...}}``: u at the collocation points and at each data term's points,
        and the derivatives the residual reads at the collocation points.
        `_losses_of` turns them into the loss terms, so the network is
        evaluated once per point (the form
        `stablegrad_optax.prediction_value_and_grad` takes, as `make_chunk`
        uses it).
        """
        inner = jax.vmap(lambda p: self._point_outputs(u, p))(batch["interior"])
        values = {"interior": inner.pop("u")}
        values |= {name: jax.vmap(u)(batch[name]) for name in self._data_terms()}
        return {"values": values, "derivatives": inner}

    def _losses_of(self, outputs: dict, batch: dict) -> dict[str, jax.Array]:
        """`losses` from the network's `_outputs`."""
        at_points = {"u": outputs["values"]["interior"], **outputs["derivatives"]}
        residual = jax.vmap(self._residual_of)(at_points, batch["interior"])
        terms = {"residual": jnp.mean(residual**2)}
        for name in self._data_terms():
            misfit = outputs["values"][name] - batch[f"{name}_values"]
            terms[name] = jnp.mean(misfit**2)
        return terms

    def losses(self, u: ScalarField, batch: dict) -> dict[str, jax.Array]:
        """Mean squared residual and data misfits, unweighted, by name."""
        return self._losses_of(self._outputs(u, batch), batch)

    def weights(self) -> dict[str, float]:
        return {"residual": self.residual_weight, "boundary": self.boundary_weight}

    def _weighted_sum(self, terms: dict[str, jax.Array], weights=None) -> jax.Array:
        """The terms of `losses` combined with `weights` (the problem's if None)."""
        weights = self.weights() if weights is None else weights
        return sum(weights[name] * value for name, value in terms.items())

    def loss(self, u: ScalarField, batch: dict) -> jax.Array:
        """The weighted sum of `losses`."""
        return self._weighted_sum(self.losses(u, batch))

    def grid(self, resolution: int = 101) -> np.ndarray:
        """A regular evaluation grid, shape (resolution**d, d), last axis fastest."""
        return box_grid(self.lower, self.upper, resolution)

    def reference_on_grid(self, resolution: int = 101) -> np.ndarray:
        """The exact (or reference) solution on `grid(resolution)`."""
        return np.asarray(self.exact(self.grid(resolution)))

    def error(self, u_batched: Callable[[jax.Array], jax.Array], resolution: int = 101):
        """`relative_l2` of a batched predictor (points (N, d) -> (N,) or (N, 1))
        on `grid(resolution)`."""
        prediction = u_batched(jnp.asarray(self.grid(resolution)))
        return relative_l2(prediction, self.reference_on_grid(resolution))
