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


@pytest.mark.parametrize(
    "variables, match",
    [
        ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234"}, "missing: JAX_NUM_PROCESSES, "),
        (
            {
                "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234",
                "JAX_NUM_PROCESSES": "two",
                "JAX_PROCESS_ID": "0",
            },
            "must be integers, got 'two' and '0'",
        ),
    ],
)
def test_multihost_variables_set_in_part_or_malformed_exit_with_one_line(
    main, monkeypatch, variables, match
):
    for name in main.DISTRIBUTED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=match):
        main.initialize_distributed(timeout_s=5)
