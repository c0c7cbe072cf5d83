"""The `certspec` command: output, exit codes, and no tracebacks for a user's mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import spec
from checkers.cli import main
from conftest import EXAMPLES

ACAS = EXAMPLES / "acasxu" / "acasxu.prop"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkers.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_show_prints_the_ir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(ACAS)]) == 0
    out = capsys.readouterr().out
    assert "network acas: real[5] -> real[5] argmin" in out
    assert "property phi1 for acas" in out
    assert "require 1.0*y[0] < 3.991125645861615" in out


def test_show_json_is_clean_json_with_every_property(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--json", str(ACAS)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in data["properties"]] == [f"phi{i}" for i in range(1, 11)]
    assert data["networks"][0]["decide"] == "argmin"


def test_fmt_output_parses_back_to_the_same_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", str(ACAS)]) == 0
    text = capsys.readouterr().out
    assert spec.load(text, "fmt.prop") == spec.load_file(ACAS)


def test_check_summarises(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ACAS)]) == 0
    assert "ok (1 networks, 0 ensembles, 10 properties)" in capsys.readouterr().out


def test_export_writes_vnnlib(tmp_path: Path) -> None:
    out = tmp_path / "phi3.vnnlib"
    assert main(["export", str(ACAS), "--property", "phi3", "-o", str(out)]) == 0
    loaded = spec.load_file(out)
    assert loaded.properties[0].requirement == spec.load_file(ACAS).property("phi3").requirement


def test_user_errors_exit_2_with_location_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.prop"
    bad.write_text("network n : real[2] -> real[2]\nproperty p:\n  require y[0] above y[5]\n")
    result = run("show", str(bad))
    assert result.returncode == 2
    assert result.stderr == (
        f"{bad}:3:22: y[5] is out of range: network n has outputs y[0] to y[1]\n"
        "  require y[0] above y[5]\n"
        "                     ^~~~\n"
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "missing.prop"], "certspec: error: missing.prop: cannot read the file: No such file or directory"),
        (["export", str(ACAS)], "has 10 properties"),
        (["export", str(ACAS), "--property", "phi11"], "has no property 'phi11' (did you mean 'phi1'?)"),
    ],
)
def test_bad_arguments_are_clear_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_binary_garbage_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.prop"
    bad.write_bytes(b"network n\xff\xfe : real[2]")
    result = run("show", str(bad))
    assert result.returncode == 2
    assert f"{bad}:1:10: invalid UTF-8 byte 0xff" in result.stderr
    assert "Traceback" not in result.stderr
