"""The 8-device suite (tests/sharded/), in a subprocess with 8 CPU devices.

XLA fixes the number of host devices when JAX starts, so the suite runs in its
own process; everything else here keeps one device.
"""

import os
import pathlib
import subprocess
import sys

import pytest
from conftest import FAST_COMPILE

HERE = pathlib.Path(__file__).parent


@pytest.mark.slow
def test_sharded_suite_passes_on_8_devices():
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        # XLA's defaults (the suite's tolerances are set under them; conftest's
        # fast-compile flags are left out), and 8 host devices.
        "XLA_FLAGS": " ".join(
            [
                *(
                    f
                    for f in os.environ.get("XLA_FLAGS", "").split()
                    if f not in FAST_COMPILE
                ),
                "--xla_force_host_platform_device_count=8",
            ]
        ),
        "SGO_SHARDED_SUITE": "1",
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, str(HERE / "sharded")],
        cwd=HERE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout
