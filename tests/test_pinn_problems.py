"""PDE problems: exact solutions satisfy the equations and the data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stablegrad_optax import pinn


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("poisson", {}),
        ("poisson", {"k": 3}),
        ("helmholtz", {}),
        ("helmholtz", {"k": 4.0}),
    ],
)
def test_exact_solutions_make_the_residual_vanish(name, options):
    problem = pinn.get_problem(name, **options)
    batch = problem.sample(jax.random.key(0), 256, 128)
    residual = jax.vmap(lambda p: problem.residual(problem.exact, p))(batch["interior"])
    scale = float(jnp.max(jnp.abs(jax.vmap(problem.source)(batch["interior"]))))
    assert float(jnp.max(jnp.abs(residual))) <= 1e-5 * scale
    terms = problem.losses(problem.exact, batch)
    assert set(terms) == {"residual", "boundary"}
    assert float(terms["boundary"]) == 0.0


@pytest.mark.parametrize("name", ["poisson", "helmholtz", "burgers"])
def test_samplers_stay_in_the_domain_and_on_the_boundary(name):
    problem = pinn.get_problem(name)
    batch = problem.sample(jax.random.key(1), 500, 300)
    lower, upper = np.array(problem.lower), np.array(problem.upper)
    interior, boundary = np.asarray(batch["interior"]), np.asarray(batch["boundary"])
    assert interior.shape == (500, problem.dim) and boundary.shape == (300, problem.dim)
    assert np.all(interior >= lower) and np.all(interior <= upper)
    on_face = np.isclose(boundary, lower) | np.isclose(boundary, upper)
    if name == "burgers":  # the spatial boundary x = +-1
        assert np.all(on_face[:, 0])
        assert np.all(np.asarray(batch["initial"])[:, 1] == 0.0)
    else:
        assert np.all(on_face.any(axis=1))
        np.testing.assert_allclose(
            batch["boundary_values"], problem.exact(boundary), atol=1e-6
        )


def test_loss_is_the_weighted_sum_of_the_terms():
    problem = pinn.get_problem("burgers", boundary_weight=10.0, initial_weight=5.0)
    batch = problem.sample(jax.random.key(2), 64, 32, 16)
    assert batch["initial"].shape == (16, 2)

    def u(p):
        return jnp.tanh(p[0] - 0.3 * p[1])

    terms = problem.losses(u, batch)
    assert set(terms) == {"residual", "boundary", "initial"}
    expected = terms["residual"] + 10.0 * terms["boundary"] + 5.0 * terms["initial"]
    assert float(problem.loss(u, batch)) == pytest.approx(float(expected), rel=1e-6)


def test_burgers_residual_reads_like_the_equation():
    problem = pinn.get_problem("burgers")
    points = problem.sample(jax.random.key(3), 64, 8)["interior"]
    # u = x / (1 + t) solves u_t + u u_x = nu u_xx exactly (u_xx = 0).
    residual = jax.vmap(lambda p: problem.residual(lambda q: q[0] / (1 + q[1]), p))(
        points
    )
    assert float(jnp.max(jnp.abs(residual))) < 1e-6
    # u = x: u_t + u u_x - nu u_xx = x.
    residual = jax.vmap(lambda p: problem.residual(lambda q: q[0], p))(points)
    np.testing.assert_allclose(residual, points[:, 0], rtol=1e-6)


def test_burgers_reference_resolves_the_shock():
    t = np.linspace(0.505, 0.515, 1001)
    _, slope = pinn.cole_hopf(np.zeros_like(t), t)
    peak = int(np.argmax(np.abs(slope)))
    assert abs(slope[peak]) == pytest.approx(152.005, abs=0.01)
    assert t[peak] == pytest.approx(1.6037 / np.pi, abs=2e-5)


def test_burgers_reference_symmetry_and_data():
    x = np.linspace(-1.0, 1.0, 41)
    for t in (0.0, 0.1, 0.5, 1.0):
        u, _ = pinn.cole_hopf(x, t)
        np.testing.assert_allclose(u, -u[::-1], atol=1e-12)
        assert abs(u[0]) < 1e-10 and abs(u[-1]) < 1e-10
    u0, _ = pinn.cole_hopf(x, 0.0)
    np.testing.assert_allclose(u0, -np.sin(np.pi * x), atol=1e-12)
    u_small, _ = pinn.cole_hopf(x, 1e-6)
    np.testing.assert_allclose(u_small, -np.sin(np.pi * x), atol=1e-4)


def test_burgers_reference_satisfies_the_equation():
    nu = 0.01 / np.pi
    x = np.array([-0.8, -0.5, -0.2, 0.3, 0.6, 0.9])
    h = 1e-4
    for t in (0.2, 0.8):
        u, u_x = pinn.cole_hopf(x, t)
        u_t = (pinn.cole_hopf(x, t + h)[0] - pinn.cole_hopf(x, t - h)[0]) / (2 * h)
        u_xx = (pinn.cole_hopf(x + h, t)[1] - pinn.cole_hopf(x - h, t)[1]) / (2 * h)
        residual = u_t + u * u_x - nu * u_xx
        scale = np.max(np.abs(u * u_x))
        assert np.max(np.abs(residual)) < 1e-5 * scale


@pytest.mark.parametrize("name", ["poisson", "helmholtz", "burgers"])
def test_relative_l2_error_on_the_grid(name):
    problem = pinn.get_problem(name)
    reference = problem.reference_on_grid(21)
    assert reference.shape == (21**problem.dim,)
    assert float(problem.error(lambda pts: jnp.asarray(reference), 21)) == 0.0
    assert float(problem.error(lambda pts: jnp.zeros(len(pts)), 21)) == pytest.approx(
        1.0
    )


def test_relative_l2_of_a_batch_is_one_error_per_row():
    reference = jax.random.normal(jax.random.key(6), (50,))
    batch = jax.random.normal(jax.random.key(7), (2, 3, 50))
    errors = pinn.relative_l2(batch, reference)
    assert errors.shape == (2, 3) and errors.dtype == jnp.float32
    for i in range(2):
        for j in range(3):
            assert float(errors[i, j]) == pytest.approx(
                float(pinn.relative_l2(batch[i, j], reference)), rel=1e-6
            )
    np.testing.assert_allclose(
        errors[0, 0],
        np.linalg.norm(batch[0, 0] - reference) / np.linalg.norm(reference),
        rtol=1e-6,
    )


def test_relative_l2_takes_a_networks_n_by_1_output():
    reference = jax.random.normal(jax.random.key(8), (40,))
    prediction = jax.random.normal(jax.random.key(9), (3, 40))
    flat = pinn.relative_l2(prediction, reference)
    np.testing.assert_array_equal(
        pinn.relative_l2(prediction[..., None], reference), flat
    )
    np.testing.assert_array_equal(
        pinn.relative_l2(prediction[..., None], reference[:, None]), flat
    )
    single = pinn.relative_l2(prediction[0][:, None], reference)
    assert single.shape == ()
    assert float(single) == pytest.approx(float(flat[0]), rel=1e-6)


@pytest.mark.parametrize("shape", [(39,), (3, 41), (40, 2), (3, 41, 1), ()])
def test_relative_l2_refuses_a_mismatched_prediction(shape):
    with pytest.raises(ValueError, match=r"does not match the reference's 40 points"):
        pinn.relative_l2(jnp.zeros(shape), jnp.ones(40))


def test_problem_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        pinn.Problem()

    class NoResidual(pinn.Problem):
        def exact(self, points):
            return jnp.zeros(len(points))

    with pytest.raises(TypeError, match="abstract"):
        NoResidual()


def test_get_problem_rejects_bad_names_and_options():
    with pytest.raises(ValueError, match="problem must be one of"):
        pinn.get_problem("heat")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['kappa'\]"):
        pinn.get_problem("poisson", kappa=2)


def test_directional_derivatives_match_the_hessian_of_a_network():
    """Forward-over-forward derivatives agree with reverse-mode grad and hessian."""
    keys = jax.random.split(jax.random.key(3), 4)
    w1 = jax.random.normal(keys[0], (3, 16))
    w2 = jax.random.normal(keys[1], (16,)) / 4
    u = lambda p: jnp.tanh(p @ w1 + 0.1) @ w2
    point = jax.random.normal(keys[2], (3,))
    direction = jax.random.normal(keys[3], (3,))
    value, first, second = pinn.directional_derivatives(u, point, direction)
    np.testing.assert_allclose(value, u(point), rtol=1e-6)
    np.testing.assert_allclose(first, jax.grad(u)(point) @ direction, rtol=1e-5)
    hessian = jax.hessian(u)(point)
    np.testing.assert_allclose(second, direction @ hessian @ direction, rtol=1e-4)
    laplacian = sum(pinn.directional_derivatives(u, point, e)[2] for e in jnp.eye(3))
    np.testing.assert_allclose(laplacian, jnp.trace(hessian), rtol=1e-4)


@pytest.mark.parametrize("name", ["poisson", "helmholtz", "burgers"])
def test_residuals_match_reverse_mode_formulas_on_a_network(name):
    """Each residual, by forward-mode derivatives, against jax.grad/jax.hessian."""
    problem = pinn.get_problem(name)
    keys = jax.random.split(jax.random.key(5), 3)
    w1 = jax.random.normal(keys[0], (2, 16))
    w2 = jax.random.normal(keys[1], (16,)) / 4
    u = lambda p: jnp.tanh(p @ w1 + 0.3) @ w2
    points = problem.sample(keys[2], 16, 4)["interior"]

    def by_hessian(p):
        value, grad, hess = u(p), jax.grad(u)(p), jax.hessian(u)(p)
        if name == "burgers":
            return grad[1] + value * grad[0] - problem.nu * hess[0, 0]
        laplacian = jnp.trace(hess)
        if name == "poisson":
            return -laplacian - problem.source(p)
        return laplacian + problem.k**2 * value - problem.source(p)

    np.testing.assert_allclose(
        jax.vmap(lambda p: problem.residual(u, p))(points),
        jax.vmap(by_hessian)(points),
        rtol=1e-4,
        atol=1e-4,
    )
