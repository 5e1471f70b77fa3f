"""`pfgmctl doctor`: versions, devices and directories for bug reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pfgmctl import __version__
from pfgmctl.cli import app

runner = CliRunner()


def test_doctor_json_has_versions_devices_and_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFGMCTL_RUNS_DIR", "elsewhere")
    result = runner.invoke(app, ["doctor", "--json"], prog_name="pfgmctl")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["python"] == sys.version.split()[0]
    assert info["pfgmctl"] == __version__
    assert info["packages"]["torch"]
    assert {"numpy", "safetensors", "pydantic"} <= info["packages"].keys()
    assert set(info["optional"]) == {"scikit-learn", "torch-fidelity"}
    assert isinstance(info["devices"]["cuda_available"], bool)
    assert info["dirs"]["runs"] == str(Path("elsewhere").resolve())
    assert info["dirs"]["config"].endswith("pfgmctl")


def test_doctor_text_lists_sections() -> None:
    result = runner.invoke(app, ["doctor"], prog_name="pfgmctl")
    assert result.exit_code == 0, result.stderr
    for needle in ("[packages]", "[optional]", "[devices]", "[dirs]", "torch:", "cuda_available"):
        assert needle in result.stdout


def test_doctor_module_does_not_import_torch_at_load() -> None:
    code = "import sys, pfgmctl.cli.doctor; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
