"""Reference AdamP/SGDP runs (PyTorch + the ``adamp`` package) for the parity tests.

A small tree in PyTorch layout: a Linear weight that is not scale-invariant
(an L2 term ties its gradient to it), a Conv weight followed by a per-channel
normalisation (scale-invariant per output channel), a weight normalised as a
whole (scale-invariant as a tensor), and biases. Gradients come from autograd
at the reference's own parameters; the same gradients are fed to our
implementation, so the comparison is of the optimizer steps alone.

`tests/golden/make_adamp_golden.py` stores these runs in a fixture so the parity
test also runs where torch is not installed.
"""

from __future__ import annotations

import numpy as np

LEARNING_RATE = 1e-2
STEPS = 60
# name -> (optimizer, options); wd_ratio stays 0.1, so "projected" is readable
# from the weight-decay ratio the reference picks.
CONFIGS = {
    "adamp": ("adamp", {}),
    "adamp_wd_nesterov": ("adamp", {"weight_decay": 0.1, "nesterov": True}),
    "sgdp_momentum": ("sgdp", {"momentum": 0.9}),
    "sgdp_wd_nesterov": (
        "sgdp",
        {"momentum": 0.9, "weight_decay": 0.1, "nesterov": True},
    ),
    "sgdp_dampening_wd": (
        "sgdp",
        {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
    ),
    "sgdp_nesterov_dampening_wd": (
        "sgdp",
        {"momentum": 0.9, "dampening": 0.2, "nesterov": True, "weight_decay": 0.1},
    ),
    # eps comparable to the row norms: where eps enters the projection shows.
    "sgdp_large_eps": ("sgdp", {"momentum": 0.9, "eps": 0.3}),
    "adamp_large_eps": ("adamp", {"eps": 0.3, "weight_decay": 0.1}),
}
NAMES = ("dense", "dense_bias", "conv", "conv_bias", "whole")
# PyTorch layout -> Flax layout (output features last).
_TO_FLAX = {
    "dense": lambda a: a.T,  # (out, in) -> (in, out)
    "conv": lambda a: a.transpose(2, 3, 1, 0),  # OIHW -> HWIO
    "whole": lambda a: a.T,
}


def to_flax(name: str, array: np.ndarray) -> np.ndarray:
    return _TO_FLAX.get(name, lambda a: a)(np.asarray(array))


def initial_params() -> dict[str, np.ndarray]:
    """The starting tree, PyTorch layout, float32."""
    rng = np.random.default_rng(0)
    shapes = {
        "dense": (3, 4),
        "dense_bias": (3,),
        "conv": (4, 2, 3, 3),
        "conv_bias": (4,),
        "whole": (3, 3),
    }
    return {n: (0.5 * rng.standard_normal(shapes[n])).astype(np.float32) for n in NAMES}


def _loss(torch, params, step):
    functional = torch.nn.functional
    generator = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(8, 4, generator=generator)
    images = torch.randn(2, 2, 5, 5, generator=generator)
    hidden = torch.tanh(x @ params["dense"].T + params["dense_bias"])
    whole = params["whole"] / params["whole"].norm()
    out = hidden @ whole.T
    maps = functional.conv2d(images, params["conv"], params["conv_bias"])
    mean = maps.mean(dim=(0, 2, 3), keepdim=True)
    std = maps.std(dim=(0, 2, 3), keepdim=True)
    normalised = (maps - mean) / (std + 1e-5)
    return (
        (out**2).mean()
        + torch.sin(normalised).mean()
        + (hidden.sum(1) - 1).pow(2).mean()
        + 0.1 * (params["dense"] ** 2).sum()
    )


def reference_run(config: str) -> dict[str, np.ndarray]:
    """The reference's gradients, parameters and projections, step by step.

    Returns arrays ``grads/<name>`` and ``params/<name>`` of shape
    ``(STEPS, *shape)`` (PyTorch layout; params after each step) and
    ``projected/<name>`` of shape ``(STEPS,)``.
    """
    import adamp
    import torch

    kind, options = CONFIGS[config]
    params = {
        n: torch.tensor(v, requires_grad=True) for n, v in initial_params().items()
    }
    cls = adamp.AdamP if kind == "adamp" else adamp.SGDP
    optimizer = cls([params[n] for n in NAMES], lr=LEARNING_RATE, **options)
    fired = []
    project = optimizer._projection

    def recording(p, grad, perturb, delta, wd_ratio, eps):
        perturb, ratio = project(p, grad, perturb, delta, wd_ratio, eps)
        fired.append((p, ratio != 1))
        return perturb, ratio

    optimizer._projection = recording
    out = {f"{k}/{n}": [] for k in ("grads", "params", "projected") for n in NAMES}
    for step in range(STEPS):
        optimizer.zero_grad()
        _loss(torch, params, step).backward()
        fired.clear()
        optimizer.step()
        projected = {id(p): f for p, f in fired}
        for n in NAMES:
            out[f"grads/{n}"].append(params[n].grad.detach().numpy().copy())
            out[f"params/{n}"].append(params[n].detach().numpy().copy())
            out[f"projected/{n}"].append(projected.get(id(params[n]), False))
    return {k: np.asarray(v) for k, v in out.items()}
