"""The `certspec` command: output, exit codes, and no tracebacks for a user's mistakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import checkers.ensemble.train
import checkers.lipschitz.train
import spec
from checkers.cli import main
from checkers.models import save_model
from conftest import EXAMPLES
from nets import random_mlp

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
    assert "require 1.0*y[0] <= 3.991125645861615" in out  # COC < 1500: the largest double below, exactly


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


# ---------------------------------------------------------------- files, pipes, Ctrl-C, terminal escapes


def _big_spec(tmp_path: Path, properties: int = 3000) -> Path:
    """A .prop file whose `show --json` output (about 2 MB) is larger than any pipe buffer."""
    body = "".join(f"property p{i}:\n  when x[0] in [0, 1]\n  require y[0] above y[1]\n" for i in range(properties))
    path = tmp_path / "big.prop"
    path.write_text("network n : real[2] -> real[3]\n" + body)
    return path


def test_a_closed_stdout_pipe_exits_quietly(tmp_path: Path) -> None:
    """`certspec show --json FILE | head -c 20`: status 141 (128 + SIGPIPE, as `yes | head` gives `yes`; 0
    when the system takes the rest of one large write without a complaint), nothing on stderr (no
    BrokenPipeError traceback, no "Exception ignored" at exit)."""
    big = _big_spec(tmp_path)
    statuses = []
    for args in (["show", "--json", str(big)], ["show", str(big)], ["fmt", str(big)]):
        child = subprocess.Popen([sys.executable, "-m", "checkers.cli", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stderr is not None
        head = child.stdout.read(20)
        child.stdout.close()
        err = child.stderr.read()
        child.stderr.close()
        statuses.append(child.wait(timeout=120))
        assert statuses[-1] in (0, 141) and len(head) == 20 and err == b"", (args, statuses[-1], err)
    assert statuses[0] == 141  # JSON is printed in pieces: the pipe's end is noticed


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo.prop"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="needs a POSIX system")
def test_devices_fifos_and_folders_are_refused_unread(tmp_path: Path) -> None:
    """`certspec show /dev/zero` read until memory ran out, a FIFO hung: a file is read only when regular."""
    zero_model = tmp_path / "zero.onnx"
    zero_model.symlink_to("/dev/zero")
    zero_checkpoint = tmp_path / "zero.pt"
    zero_checkpoint.symlink_to("/dev/zero")
    cases = [
        (["show", "/dev/zero"], "certspec: error: /dev/zero: not a regular file (a device, FIFO or socket)"),
        (["show", str(_fifo(tmp_path))], "fifo.prop: not a regular file"),
        (["check", str(tmp_path)], f"{tmp_path}: is a directory, not a file"),
        (["fmt", "/dev/zero"], "/dev/zero: not a regular file"),
        (["verify", str(ACAS), "--model", f"acas={zero_model}", "--property", "phi3"], "zero.onnx: not a regular file"),
        (["verify", str(ACAS), "--model", f"acas={zero_checkpoint}", "--property", "phi3"], "zero.pt: not a regular file"),
        (["vnnlib", str(zero_model), "/dev/zero"], "/dev/zero: not a regular file"),
    ]
    for args, message in cases:
        result = subprocess.run([sys.executable, "-m", "checkers.cli", *args], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1


def test_files_over_the_size_limit_are_refused_naming_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CERTSPEC_MAX_SPEC_BYTES", "1000")
    size = ACAS.stat().st_size
    for command in ("show", "check", "fmt"):
        assert main([command, str(ACAS)]) == 2
        assert capsys.readouterr().err == (
            f"certspec: error: {ACAS}: the file has {size:,} bytes, more than the limit of 1,000 "
            "(CERTSPEC_MAX_SPEC_BYTES; set that environment variable to raise it)\n")
    monkeypatch.setenv("CERTSPEC_MAX_SPEC_BYTES", str(size))
    assert main(["show", str(ACAS)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("CERTSPEC_MAX_SPEC_BYTES", "lots")
    assert main(["show", str(ACAS)]) == 2
    assert "CERTSPEC_MAX_SPEC_BYTES='lots' must be a positive whole number" in capsys.readouterr().err
    monkeypatch.delenv("CERTSPEC_MAX_SPEC_BYTES")
    monkeypatch.setenv("CERTSPEC_MAX_MODEL_BYTES", "100")
    model = tmp_path / "acas.pt"
    save_model(random_mlp(3, 5, [16], 5), (5,), model)
    assert main(["verify", str(ACAS), "--model", f"acas={model}", "--property", "phi3"]) == 2
    assert "more than the limit of 100 (CERTSPEC_MAX_MODEL_BYTES;" in capsys.readouterr().err


def _output_cases(tmp_path: Path, model: Path) -> list[tuple[list[str], str]]:
    missing, folder, plain = tmp_path / "no" / "such", tmp_path / "folder", tmp_path / "plain.txt"
    folder.mkdir()
    plain.write_text("a file")
    digits = str(EXAMPLES / "digits" / "digits.prop")
    guard = ["guard", str(ACAS), "--model", f"acas={model}", "--property", "phi3", "-o"]
    return [
        (["export", str(ACAS), "--property", "phi3", "-o", str(missing / "p.vnnlib")],
         f"-o {missing / 'p.vnnlib'}: the directory {missing} does not exist (create it first)"),
        (["export", str(ACAS), "--property", "phi3", "-o", str(folder)], f"-o {folder}: is a directory"),
        ([*guard, str(missing / "g.pt")], f"-o {missing / 'g.pt'}: the directory {missing} does not exist"),
        ([*guard, str(folder)], f"-o {folder}: is a directory"),
        ([*guard, str(plain / "g.pt")], f"-o {plain / 'g.pt'}: {plain} is not a directory"),
        (["train", digits, "-o", str(missing / "d.pt"), "--epochs", "1"], f"-o {missing / 'd.pt'}: the directory"),
        (["train", digits, "-o", str(folder), "--epochs", "1"], f"-o {folder}: is a directory"),
        (["certify", digits, "--model", str(EXAMPLES / "digits" / "digits.pt"), "--plot", str(missing / "v.png")],
         f"--plot {missing / 'v.png'}: the directory {missing} does not exist"),
        (["crosscheck", str(EXAMPLES / "cascade" / "cascade.prop"), "--train", "--save", str(plain / "d")],
         f"--save {plain / 'd'}: {plain} is a file, not a directory"),
    ]


def test_outputs_to_missing_directories_or_to_directories_are_clear_errors_before_the_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """-o (export, guard, train), --plot and --save: exit 2 with one line naming the path, checked before
    any training (the trainers are replaced by a failure here), never a traceback."""
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before checking the output path")

    monkeypatch.setattr(checkers.lipschitz.train, "train", no_training)
    monkeypatch.setattr(checkers.ensemble.train, "train_cascade_members", no_training)
    model = tmp_path / "acas.pt"
    save_model(random_mlp(3, 5, [16], 5), (5,), model)
    for args, message in _output_cases(tmp_path, model):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"certspec: error: {message}") and err.count("\n") == 1, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acas.pt", "folder", "plain.txt"]


_INTERRUPT_AT_IMPORT = """
import builtins, runpy, sys
real, target = builtins.__import__, sys.argv[1]
def interrupting(name, *args, **kwargs):
    if name == target:
        raise KeyboardInterrupt  # Ctrl-C while this module is imported
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
sys.argv = ["certspec", *sys.argv[2:]]
runpy.run_module("checkers.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["lark", "torch", "onnx"])
def test_ctrl_c_while_the_command_starts_exits_130_with_one_line(module: str) -> None:
    """A KeyboardInterrupt while lark (module level), torch or onnx (the subcommands) are imported: torch
    was imported outside the handler, so this was a traceback."""
    result = subprocess.run([sys.executable, "-c", _INTERRUPT_AT_IMPORT, module, "check", str(ACAS)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stderr, result.stdout) == (130, "certspec: interrupted\n", "")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_a_real_ctrl_c_at_any_moment_of_start_up_is_quiet() -> None:
    """SIGINT at several moments of `certspec check` (most of its 2-3 s go to importing torch): status 130
    and one line (or, before Python has a handler, killed by the signal; or done), never a traceback.
    Python's own start-up (its site .pth files, before certspec is imported) is not certspec's to handle:
    the first signal is sent after it."""
    for delay in (0.3, 0.6, 0.9, 1.2, 1.6):
        child = subprocess.Popen([sys.executable, "-m", "checkers.cli", "check", str(ACAS)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
        assert "Traceback" not in err and "Error" not in err, (delay, err)
        assert (child.returncode in (130, -signal.SIGINT) and err in ("", "certspec: interrupted\n")) or (
            child.returncode == 0 and "ok (1 networks" in out), (delay, child.returncode, err)


def test_escape_sequences_from_the_user_are_printed_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """File names, arguments and --model values holding ESC sequences: shown as \\x1b... in error lines (and
    in the names `check` prints), never sent raw to the terminal."""
    esc = "\x1b[2J\x1b[31m"
    shown = "\\x1b[2J\\x1b[31m"
    named = tmp_path / f"odd{esc}.prop"
    named.write_bytes(ACAS.read_bytes())
    assert main(["check", str(named)]) == 0
    assert capsys.readouterr().out == f"{tmp_path}/odd{shown}.prop: ok (1 networks, 0 ensembles, 10 properties)\n"
    cases = [
        (["show", str(tmp_path / f"missing{esc}.prop")], f"missing{shown}.prop: cannot read the file"),
        (["verify", str(ACAS), "--model", f"acas={tmp_path}/m{esc}.onnx"], f"m{shown}.onnx: no such file"),
        (["export", str(ACAS), "--property", "phi3", "-o", f"{tmp_path}/no{esc}/p.vnnlib"], f"no{shown}"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and "\x1b" not in err, err
    with pytest.raises(SystemExit) as exit_info:  # argparse's own error line: unrecognized arguments
        main(["show", str(ACAS), esc])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {shown}" in err and "\x1b" not in err
