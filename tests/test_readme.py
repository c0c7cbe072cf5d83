"""The README's language example and its two opening commands stay true."""

from __future__ import annotations

import re
import shlex

import pytest

import spec
from checkers.cli import main
from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_the_language_example_loads() -> None:
    block = README.split("## The language", 1)[1].split("```", 2)[1]
    text = block.replace("[0.1, 0.0, ...]", "[" + ", ".join(["0.5"] * 64) + "]")
    loaded = spec.load(text, "README.md")
    assert [p.name for p in loaded.properties] == [
        "phi1", "phi8", "robust_digits", "top2_digits", "affine_digits", "at_a_point", "halfspace", "stack_robust",
    ]
    assert loaded.property("stack_robust").target == "stack"


def test_the_readme_opens_with_install_and_test_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    install, test = first_block.group(1).strip().splitlines()
    assert install.startswith("pip install torch==2.13.0 && pip install -e")
    assert test == "python -m pytest"
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(test)


def test_the_main_job_runs_from_a_clone(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The install command ends with the main job, on files a clone ships: it must succeed."""
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    job = shlex.split(first_block.group(1).strip().splitlines()[0].split("&&")[-1])
    assert job[0] == "certspec"
    monkeypatch.chdir(ROOT)
    assert all((ROOT / arg).exists() for arg in job if arg.startswith("examples/"))
    assert main(job[1:]) == 0
    assert "VRA" in capsys.readouterr().out
