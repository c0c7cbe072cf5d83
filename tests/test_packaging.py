"""A non-editable install ships every package of the repository (not only the top-level ones)."""

from __future__ import annotations

import pytest
from setuptools import find_packages

from conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")


def test_every_package_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(str(ROOT), include=include))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
               if p.parts[len(ROOT.parts)] in ("spec", "checkers", "grammars")}
    assert on_disk <= shipped
    assert {"checkers.lipschitz", "checkers.guard", "checkers.fgp", "checkers.ensemble"} <= shipped
