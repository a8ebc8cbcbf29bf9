"""A deep MLP for PINNs (Flax linen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "sin": jnp.sin,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
}


class MLP(nn.Module):
    """`depth` hidden Dense layers of `width`, then a Dense output layer "head".

    Hidden layers are named `hidden_0` .. `hidden_{depth-1}` and the output
    layer `head`, so `stablegrad`'s output-layer detection finds it whether or
    not `init` ran under `jax.jit`.

    Attributes:
      depth: number of hidden layers.
      width: units per hidden layer.
      out_features: size of the output.
      activation: "tanh", "sin", "gelu" or "silu".
      input_bounds: if set, (lower, upper) corners of the input box; inputs are
        mapped affinely to [-1, 1] before the first layer.
      kernel_init: initialiser of every Dense kernel.
      bias_init: initialiser of every Dense bias.
    """

    depth: int = 8
    width: int = 50
    out_features: int = 1
    activation: str = "tanh"
    input_bounds: tuple[Sequence[float], Sequence[float]] | None = None
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    def setup(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got "
                f"{self.activation!r}."
            )
        if self.depth < 0 or self.width < 1:
            raise ValueError(
                f"depth must be >= 0 and width >= 1, got depth={self.depth}, "
                f"width={self.width}."
            )
        dense = lambda n, name: nn.Dense(
            n, kernel_init=self.kernel_init, bias_init=self.bias_init, name=name
        )
        self.hidden = [dense(self.width, f"hidden_{i}") for i in range(self.depth)]
        self.head = dense(self.out_features, "head")

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.input_bounds is not None:
            lift = (1,) * (x.ndim - 1) + (x.shape[-1],)
            lower = jnp.asarray(self.input_bounds[0], x.dtype).reshape(lift)
            upper = jnp.asarray(self.input_bounds[1], x.dtype).reshape(lift)
            x = 2 * (x - lower) / (upper - lower) - 1
        act = ACTIVATIONS[self.activation]
        for layer in self.hidden:
            x = act(layer(x))
        return self.head(x)
