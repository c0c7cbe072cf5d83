"""certspec's property language: parse `.prop` text, check it and lower it to the IR.

    >>> from spec import load
    >>> spec = load(open("examples/acasxu/acasxu.prop").read(), "acasxu.prop")

`load_file` reads `.prop` and `.vnnlib` files alike. Every user mistake raises a
`SpecError` whose text is `file:line:col: message`, the line, and a caret.
"""

from __future__ import annotations

from pathlib import Path

from spec.errors import SpecError
from spec.ir import Spec
from spec.lower import lower
from spec.parser import decode, parse
from spec.printer import pretty

__all__ = ["Spec", "SpecError", "decode", "load", "load_file", "lower", "parse", "pretty"]


def load(text: str, name: str = "<string>") -> Spec:
    """Parse, check and lower property-language text to a validated IR `Spec`."""
    return lower(parse(text, name))


def load_file(path: str | Path) -> Spec:
    """Load a `.prop` file, or a `.vnnlib` file (one property, network `net`)."""
    path = Path(path)
    if path.suffix == ".vnnlib":
        from spec.vnnlib import read_vnnlib  # counts lines as VNN-LIB does, in errors too

        return read_vnnlib(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SpecError(f"{path}: cannot read the file: {err.strerror}") from None
    return load(decode(data, str(path)).text, str(path))
