"""The learning-rate tuning run behind `default.py`: a grid per optimizer.

On seed 1, so that the default run (seed 0) is not the one its learning rates
were chosen on. Every optimizer the example can build, 31 runs. The committed
results were made a few optimizers at a time (``--optimizers`` picks them):

* `benchmarks/results/pinn_flagship_tune/`: ``adam stablegrad+adam
  sgd-momentum stablegrad+sgd-momentum`` (all the example had then, so its
  recorded command has no ``--optimizers``; about 25 minutes on a 2-core CPU);
* `benchmarks/results/pinn_flagship_tune_prediction/`:
  ``stablegrad(prediction)+adam``;
* `benchmarks/results/pinn_flagship_tune_peers/`: ``agc+adam adam+decay``.
"""

from __future__ import annotations

import dataclasses

from configs import default


def get_config() -> default.Config:
    adam = (1e-4, 3e-4, 1e-3, 3e-3)
    return dataclasses.replace(
        default.get_config(),
        optimizers=default.OPTIMIZERS,
        seed=1,
        learning_rates={
            "adam": adam,
            "stablegrad(prediction)+adam": adam,
            "stablegrad+adam": adam,
            "agc+adam": adam,
            # Tuned at 3e-3, the top of Adam's grid, in a first run: one more.
            "adam+decay": (*adam, 1e-2),
            "sgd-momentum": (3e-7, 1e-6, 3e-6, 1e-5),
            # Every layer's gradient gets the output layer's std (about 50 at
            # init, most hidden layers' are smaller): smaller steps than SGD's.
            "stablegrad+sgd-momentum": (1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5),
        },
    )
