"""examples/sharded/main.py --multihost as two JAX processes on one machine.

Two processes on 127.0.0.1 with 2 virtual CPU devices each form one 4-device
mesh with real cross-process collectives (gloo) and one orbax checkpoint that
each process writes its shards of. Every process runs under a timeout; one that
fails stops the others and fails the test with every process's output.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from helpers import ROOT, made_once

pytestmark = pytest.mark.slow

MAIN = str(ROOT / "examples" / "sharded" / "main.py")
CONFIG = str(ROOT / "examples" / "sharded" / "configs" / "test.py")
TIMEOUT_S = 240  # per process: start-up, compilation and 6 tiny steps
STEPS = 6  # the test config's, logged and checkpointed every 3
DISTRIBUTED = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(devices: int, **variables: str) -> dict:
    """This process's environment on `devices` CPU devices, under XLA's default
    compiler settings (the tolerances below are set under them)."""
    # No proxy: gRPC would route the coordinator's 127.0.0.1 through one.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in DISTRIBUTED and not k.lower().endswith("_proxy")
    }
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        **variables,
    )
    return env


def run_together(runs, timeout_s: float = TIMEOUT_S) -> list[str]:
    """Runs every (flags, env) as a process of the example at once; returns
    their outputs, or fails as soon as one fails or the time is up."""
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in runs]
        procs = [
            subprocess.Popen(
                [sys.executable, MAIN, f"--config={CONFIG}", *flags],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for (flags, env), log in zip(runs, logs, strict=True)
        ]
        deadline = time.monotonic() + timeout_s
        try:
            while None in (codes := [p.poll() for p in procs]):
                if any(codes) or time.monotonic() > deadline:  # one failed
                    break
                time.sleep(0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
    if any(p.returncode for p in procs):
        pytest.fail(
            "\n".join(
                f"--- process {i} (exit {p.returncode}, limit {timeout_s} s):\n{out}"
                for i, (p, out) in enumerate(zip(procs, outputs, strict=True))
            )
        )
    return outputs


def process_runs(workdir, *flags) -> list:
    """The (flags, env) of the scaling page's two-process command, with one
    coordinator on a free port."""
    address = f"127.0.0.1:{free_port()}"
    return [
        (
            ["--multihost", "--multihost-timeout=120", f"--workdir={workdir}", *flags],
            environment(
                2,
                JAX_COORDINATOR_ADDRESS=address,
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
        )
        for i in range(2)
    ]


def two_processes(workdir, *flags) -> list[str]:
    return run_together(process_runs(workdir, *flags))


def checkpoint(workdir, step: int = STEPS) -> dict:
    """A checkpoint of the example as host numpy arrays."""
    path = workdir / "checkpoints" / str(step) / "default"
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, restore_args=as_numpy)


def results(workdir) -> dict:
    return json.loads((workdir / "results.json").read_text())


LAYOUTS = ("dp", "fsdp")


def run_the_references(root) -> None:
    """Per layout two processes of 2 devices and one process of 4; one process
    of 1 device."""
    for layout in LAYOUTS:
        two_processes(root / f"{layout}_two_processes", f"--layout={layout}")
    single = [((f"--workdir={root / 'one_device'}", "--layout=dp"), environment(1))]
    for layout in LAYOUTS:
        flags = (f"--workdir={root / f'{layout}_one_process'}", f"--layout={layout}")
        single.append((flags, environment(4)))
    run_together(single)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The work directories of `run_the_references`, run once per test run."""
    root = made_once(tmp_path_factory, "multihost", run_the_references)
    dirs = {"one device": root / "one_device"}
    for layout in LAYOUTS:
        dirs[layout, "two processes"] = root / f"{layout}_two_processes"
        dirs[layout, "one process"] = root / f"{layout}_one_process"
    return dirs


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_processes_match_one_process_on_4_devices_and_on_1(runs, layout):
    got = results(runs[layout, "two processes"])
    assert got["processes"] == 2 and got["mesh"] == {"data": 4}
    assert got["start_step"] == 0 and [r["step"] for r in got["log"]] == [3, 6]
    trained = checkpoint(runs[layout, "two processes"])
    for reference in (runs[layout, "one process"], runs["one device"]):
        expected = checkpoint(reference)
        # StableGrad + Adam: the 8-device suite's rtol, and its absolute atol
        # 1e-6 scaled by each leaf's largest entry: this Poisson loss's
        # gradients reach 1e3, and Adam's first moment holds near-cancelling
        # entries whose float32 sums differ in order between the layouts (2e-4
        # where the leaf's largest is 4e3).
        for a, b in zip(*map(jax.tree.leaves, (trained, expected)), strict=True):
            atol = 1e-6 * max(1.0, np.max(np.abs(b), initial=0.0))
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol)
        np.testing.assert_allclose(
            got["rel_l2"], results(reference)["rel_l2"], rtol=1e-4
        )


def test_both_processes_resume_from_one_checkpoint_bit_for_bit(runs, tmp_path):
    workdir = tmp_path / "split"
    two_processes(workdir, "--layout=fsdp", "--steps=3")
    outputs = two_processes(workdir, "--layout=fsdp")
    for out in outputs:  # each process restored its shards of step 3
        assert "resumed from the checkpoint of step 3" in out
    assert results(workdir)["start_step"] == 3
    resumed, uninterrupted = (
        checkpoint(workdir),
        checkpoint(runs["fsdp", "two processes"]),
    )
    assert jax.tree.structure(resumed) == jax.tree.structure(uninterrupted)
    for a, b in zip(
        jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_a_process_that_dies_fails_the_run_at_once_with_its_output(tmp_path):
    runs = process_runs(tmp_path, "--layout=fsdp")
    runs[1][0].append("--steps=0")  # refused: process 0 would wait 120 s for it
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failure:
        run_together(runs)
    assert time.monotonic() - start < 90  # well before the 120 s wait
    message = str(failure.value)
    assert "--- process 0 (exit -9" in message
    assert "--- process 1 (exit 2" in message and "error: argument --steps" in message


def test_a_coordinator_that_never_answers_is_one_line_within_the_timeout(tmp_path):
    env = environment(
        2,
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{free_port()}",
        JAX_NUM_PROCESSES="2",
        JAX_PROCESS_ID="1",
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, MAIN, "--multihost", "--multihost-timeout=3"]
        + [f"--config={CONFIG}", f"--workdir={tmp_path}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - start < 60
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --multihost: not every process reached the coordinator at "
        f"{env['JAX_COORDINATOR_ADDRESS']} within 3 s (--multihost-timeout)"
    )
