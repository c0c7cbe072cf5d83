"""Every shipped example loads, and its canonical text loads to the same IR."""

from __future__ import annotations

from pathlib import Path

import pytest

import spec
from conftest import EXAMPLES

FILES = sorted(EXAMPLES.rglob("*.prop"))


def test_there_are_examples() -> None:
    assert {f.parent.name for f in FILES} >= {"acasxu", "digits"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_loads_and_formats_stably(path: Path) -> None:
    loaded = spec.load_file(path)
    assert loaded.properties
    text = spec.pretty(spec.parse(path.read_text(), str(path)))
    assert spec.load(text, "formatted.prop") == loaded
