"""A deep PINN: a problem, the critical initialisation, the paper's StableGrad."""

import jax
import jax.numpy as jnp
import optax

import stablegrad_optax as sgo
from stablegrad_optax import init, models, pinn

DEPTH, STEPS = 4, 4  # the depth sweep: depths 4 to 64, 1500 steps

# [start pinn]
problem = pinn.get_problem("poisson")  # or "burgers", "helmholtz"
kernel_init, bias_init = init.get_initializers("critical", models.ACTIVATIONS["tanh"])
model = models.MLP(
    depth=DEPTH,
    width=50,
    activation="tanh",
    input_bounds=(problem.lower, problem.upper),  # inputs mapped to [-1, 1]
    kernel_init=kernel_init,
    bias_init=bias_init,
)
params = model.init(jax.random.key(0), jnp.zeros((1, problem.dim)))["params"]
tx = optax.chain(sgo.stablegrad("prediction"), optax.adam(3e-4))
# prediction_reference="data": the std of dL/du at the boundary points, from the
# step's own backward pass, passed to the update at every step.
params, records = pinn.train(
    problem,
    lambda params, x: model.apply({"params": params}, x),
    params,
    tx,
    key=jax.random.key(1),
    steps=STEPS,
    log_every=STEPS,
    prediction_reference="data",
)
print(records[-1]["rel_l2"])  # relative L2 error against the exact solution
# [end pinn]
