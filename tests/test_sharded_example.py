"""The sharded example's entry point on this process's single device.

Its training on 8 devices (every layout, resume) is tested in tests/sharded/.
"""

import json
import pathlib

import pytest
from helpers import example_main

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "sharded"
TEST_CONFIG = str(EXAMPLE / "configs" / "test.py")


main = example_main("sharded")


def test_a_short_run_writes_its_results(main, tmp_path):
    main.main([f"--config={TEST_CONFIG}", f"--workdir={tmp_path}", "--layout=dp"])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["layout"] == "dp" and written["mesh"] == {"data": 1}
    assert written["steps"] == 6 and written["start_step"] == 0
    assert [r["step"] for r in written["log"]] == [3, 6]
    first = written["log"][0]
    assert first["smallest"][1] <= first["largest"][1] and first["reference"] > 0
    assert (tmp_path / "checkpoints" / "6").is_dir()


def test_flags_override_the_config(main, tmp_path):
    config, workdir, multihost_timeout = main.parse_args(
        [f"--config={TEST_CONFIG}", "--layout=2d", "--model-axis=4", "--width=32"]
        + [f"--workdir={tmp_path}", "--no-checkpoint", "--multihost"]
        + ["--multihost-timeout=30"]
    )
    assert (config.layout, config.model_axis, config.width) == ("2d", 4, 32)
    assert not config.checkpoint and workdir == str(tmp_path)
    assert multihost_timeout == 30
    assert main.parse_args([f"--config={TEST_CONFIG}"])[2] is None  # one process


@pytest.mark.parametrize(
    "flags", [["--layout=tp"], ["--steps=0"], ["--config=missing.py"]]
)
def test_bad_flags_exit_with_a_usage_error(main, flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.parse_args(flags)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_layout_the_devices_cannot_form_is_one_clear_line(main, tmp_path):
    with pytest.raises(SystemExit, match="model_axis must divide the 1 devices"):
        main.main([f"--config={TEST_CONFIG}", f"--workdir={tmp_path}", "--layout=2d"])


def test_multihost_passes_what_is_set_and_jaxs_refusal_is_one_line(main, monkeypatch):
    calls = []

    def refuse(**kwargs):  # what JAX says outside a cluster it detects
        calls.append(kwargs)
        raise ValueError("Number of processes must be defined.")

    monkeypatch.setattr(main.jax.distributed, "initialize", refuse)
    for name in main.DISTRIBUTED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    with pytest.raises(SystemExit, match="failed: Number of processes must be"):
        main.initialize_distributed(timeout_s=5)
    assert calls == [
        {"coordinator_address": "127.0.0.1:1234", "initialization_timeout": 35}
    ]
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(SystemExit, match="JAX_NUM_PROCESSES must be an integer"):
        main.initialize_distributed(timeout_s=5)
    assert len(calls) == 1  # refused before JAX is called
