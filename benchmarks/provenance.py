"""Where a benchmark row came from: the code version and the device.

The helpers live in ``examples/common.py``, which the examples share with the
benchmarks; this module is the name under which the older benchmark scripts
(``bnfree_stress.py``, ``pinn_depth_sweep.py``) import them. Other scripts put
``examples/`` on ``sys.path`` and import ``common`` themselves.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))

from common import code_version, device_name, name_list  # noqa: E402, F401
