"""The user's files: every file the command line reads or writes goes through here.

    >>> data = read_file("net.onnx", MODEL)       # bytes, or a ModelError naming the file
    >>> check_file("phi3.vnnlib", SPEC)           # before a reader in `spec` opens it
    >>> check_output("out/guarded.pt", "-o")      # before the work: its folder exists, it is no folder

A file that is read must be a regular file (a folder, a FIFO, a device such as /dev/zero or a
socket is refused before anything is read) no larger than a stated limit; a model file's
contents are checked against more limits before they are allocated (`check_elements`,
`check_archive`). Each limit is a module constant that an environment variable of the same
name overrides (a positive whole number)::

    CERTSPEC_MAX_SPEC_BYTES   MAX_SPEC_BYTES    .prop and .vnnlib files (64 MiB)
    CERTSPEC_MAX_MODEL_BYTES  MAX_MODEL_BYTES   model files, and what a checkpoint's archive inflates to (1 GiB)
    CERTSPEC_MAX_ELEMENTS     MAX_ELEMENTS      values in one tensor a model file declares (a weight, one
                                                sample's activations) and in all its weights together (2**28)
    CERTSPEC_MAX_LAYERS       MAX_LAYERS        layers a checkpoint describes (10,000)

A checkpoint's data may also expand to at most MAX_NODES (2**20) values and containers, each
reference to a shared one counted (a pickle can repeat one object a million times in a few
megabytes). ONNX files never read external data (`checkers.onnx_import`).

An error over a limit names the limit and the variable that raises it. File names and values
from the user are shown `printable` (spec.errors) in every message: a name cannot send the
terminal an escape sequence.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spec.errors import ModelError, SpecError, UsageError, printable

if TYPE_CHECKING:
    from spec.ir import Spec

MAX_SPEC_BYTES = 64 << 20
MAX_MODEL_BYTES = 1 << 30
MAX_ELEMENTS = 1 << 28
MAX_LAYERS = 10_000
MAX_NODES = 1 << 20  # containers and values in a checkpoint's data, shared references counted each time

_DEFAULTS = {"CERTSPEC_MAX_SPEC_BYTES": MAX_SPEC_BYTES, "CERTSPEC_MAX_MODEL_BYTES": MAX_MODEL_BYTES,
             "CERTSPEC_MAX_ELEMENTS": MAX_ELEMENTS, "CERTSPEC_MAX_LAYERS": MAX_LAYERS}


def limit(name: str) -> int:
    """The limit `name` (CERTSPEC_MAX_...): its environment variable when set, else the module constant."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return _DEFAULTS[name]
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"the environment variable {name}={text!r} must be a positive whole number")
    return value


def over_limit(what: str, count: int, name: str, unit: str) -> str:
    """The message for `what` holding `count` `unit`, more than the limit `name` allows."""
    return (f"{what} has {count:,} {unit}, more than the limit of {limit(name):,} ({name}; set that environment "
            "variable to raise it)")


def check_elements(count: int, what: str, name: str = "CERTSPEC_MAX_ELEMENTS") -> None:
    """ModelError when `what` would hold more than the element limit: checked before it is allocated."""
    if count > limit(name):
        raise ModelError(over_limit(what, count, name, "values"))


def check_layers(count: int) -> None:
    """ModelError when a checkpoint describes more layers than CERTSPEC_MAX_LAYERS allows."""
    if count > limit("CERTSPEC_MAX_LAYERS"):
        raise ModelError(over_limit("the layer list", count, "CERTSPEC_MAX_LAYERS", "layers"))


@dataclass(frozen=True)
class Kind:
    """What a file is, for the checks and the messages."""

    error: type[SpecError]
    limit: str  # the name of the size limit
    missing: str  # the message for a file that does not exist
    unreadable: str  # the message for any other OSError, with {reason}


SPEC = Kind(UsageError, "CERTSPEC_MAX_SPEC_BYTES", "cannot read the file: No such file or directory",
            "cannot read the file: {reason}")
MODEL = Kind(ModelError, "CERTSPEC_MAX_MODEL_BYTES", "no such file", "cannot be read ({reason})")


def _open(path: Path, kind: Kind) -> int:
    """A file descriptor of `path`, checked to be a regular file within the size limit."""
    name = printable(str(path))
    try:  # O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused just below
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise kind.error(f"{name}: {kind.missing}") from None
    except IsADirectoryError:
        raise kind.error(f"{name}: is a directory, not a file") from None
    except OSError as err:
        raise kind.error(f"{name}: {kind.unreadable.format(reason=err.strerror or err)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise kind.error(f"{name}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise kind.error(f"{name}: not a regular file (a device, FIFO or socket): certspec reads regular "
                             "files only")
        if info.st_size > limit(kind.limit):
            raise kind.error(f"{name}: " + over_limit("the file", info.st_size, kind.limit, "bytes"))
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_file(path: str | Path, kind: Kind = SPEC) -> None:
    """Raise kind.error unless `path` is a regular file within its size limit (nothing is read)."""
    os.close(_open(Path(path), kind))


def read_file(path: str | Path, kind: Kind = SPEC) -> bytes:
    """The bytes of a regular file within its size limit (at most the limit is ever read); kind.error otherwise."""
    path = Path(path)
    fd = _open(path, kind)
    most = limit(kind.limit)
    try:
        with os.fdopen(fd, "rb") as f:
            # read(n) reserves n bytes first: ask for the file's size and one more (to see it grow), not the limit
            size = os.fstat(f.fileno()).st_size
            data = f.read(min(most, size) + 1)
            if len(data) > size:  # it grows while read: on, a piece at a time, up to one byte past the limit
                grown = bytearray(data)
                while len(grown) <= most and (piece := f.read(min(1 << 20, most + 1 - len(grown)))):
                    grown += piece
                data = bytes(grown)
    except OSError as err:
        raise kind.error(f"{printable(str(path))}: {kind.unreadable.format(reason=err.strerror or err)}") from None
    if len(data) > most:  # it grew after the check
        raise kind.error(f"{printable(str(path))}: " + over_limit("the file", len(data), kind.limit, "bytes"))
    return data


def load_spec(path: str | Path) -> Spec:
    """`spec.load_file` (a .prop or .vnnlib file to a validated IR Spec) on a file checked here first."""
    import spec

    check_file(path, SPEC)
    return spec.load_file(path)


# ---------------------------------------------------------------- checkpoints


def check_archive(data: bytes, name: str) -> None:
    """A torch checkpoint's zip archive checked before torch reads it: a zip (torch.save's format since
    torch 1.6; the older formats allocate what their pickle declares before reading it), whose entries
    inflate to at most the model-size limit in all (a small deflated entry can claim gigabytes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):  # not a zip, or a corrupt directory
        raise ModelError(f"{name}: not a torch checkpoint in the zip format torch.save writes (older formats are "
                         "refused: they cannot be checked before their tensors are allocated)") from None
    total = sum(max(0, e.file_size) for e in entries)
    if total > limit("CERTSPEC_MAX_MODEL_BYTES"):
        raise ModelError(f"{name}: " + over_limit(f"the archive ({len(entries)} entries, {len(data):,} bytes)", total,
                                                  "CERTSPEC_MAX_MODEL_BYTES", "bytes once inflated"))
    if not any(e.filename.endswith("data.pkl") for e in entries):
        raise ModelError(f"{name}: not a torch checkpoint (its zip archive has no data.pkl)")


def check_nodes(data: Any, name: str, most: int = MAX_NODES) -> None:
    """ModelError when a loaded checkpoint's data expands to more than `most` containers and values.

    A pickle can refer to one object many times: a list of a million references to one
    layer description costs a few bytes each in the file and a layer each once built. The
    walk counts every reference and stops at the limit."""
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        count += 1
        if count > most:
            raise ModelError(f"{name}: the checkpoint's data holds more than {most:,} values and containers "
                             "(counting each reference to a shared one): refused")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)


# ---------------------------------------------------------------- outputs


def check_output(path: str | Path, flag: str, folder: bool = False) -> Path:
    """UsageError unless `path` can be written: its folder exists, and it is not a folder itself.

    Checked before the work (training, compiling a guard), so that a mistyped folder costs
    nothing. folder=True: `path` is a folder to write into (created if missing, with its parents),
    which must not be a file."""
    path = Path(path)
    shown = f"{flag} {printable(str(path))}"
    if folder:
        for p in (path, *path.parents):
            if p.exists():
                if not p.is_dir():
                    raise UsageError(f"{shown}: {printable(str(p))} is a file, not a directory")
                break
        return path
    if path.is_dir():
        raise UsageError(f"{shown}: is a directory: give the name of the file to write (in it, or elsewhere)")
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"{shown}: the directory {printable(str(parent))} does not exist (create it first)")
    if not parent.is_dir():
        raise UsageError(f"{shown}: {printable(str(parent))} is not a directory")
    return path


def write_output(path: str | Path, flag: str, write: Callable[[Path], object]) -> None:
    """Check `path` as `check_output` does, then write(path); an OSError is a UsageError naming the file."""
    target = check_output(path, flag)
    try:
        write(target)
    except OSError as err:
        raise UsageError(f"{flag} {printable(str(target))}: cannot write the file: {err.strerror or err}") from None
