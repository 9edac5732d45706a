"""Where a command may write, checked before any work: the output-path guard.

No command writes over a file it reads, over another output of the same run, or into an adapter
directory it did not make; each output's folder must exist (a directory output's nearest existing
folder) and take a new file. Paths are compared resolved (symlinks, `..`) and, when both exist, as
the same file on disk (hard links). Every refusal is an OutputError (exit 4) naming both paths.
`replacing_directory` swaps a finished directory for a new one only once the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from emotion_app.artifacts import ADAPTER_CONFIG, ADAPTER_WEIGHTS, METRICS_FILE, name_max, temporary_name
from emotion_app.errors import InputError, OutputError

PathLike = str | os.PathLike
Paths = Mapping[str, PathLike | Sequence[PathLike] | None]  # label (the flag) -> one path, several or none
SHOWN_ENTRIES = 5  # entries of a non-empty folder named in a refusal


def check_outputs(outputs: Paths, inputs: Paths | None = None, *, directories: Collection[str] = (),
                  into_adapter: PathLike | None = None) -> None:
    """Refuse (OutputError) any output that is an input, another output, inside an adapter directory
    (other than `into_adapter`, the one a command writes into by design), or that cannot be created.
    `directories`: the labels of outputs that are folders (created with their parents when
    missing); the others are files whose folder must exist. Inputs that do not exist are skipped
    (a Hub id, or a file whose reading will say it is missing)."""
    outs = [(name, path, flag in directories) for flag, name, path in _resolved(outputs)]
    ins = [(name, path) for _, name, path in _resolved(inputs or {}) if path.exists()]
    allowed = Path(into_adapter).resolve() if into_adapter is not None else None
    for index, (name, path, is_dir) in enumerate(outs):
        _check_name(name, path)
        for other_name, other in ins:
            _check_pair(name, path, is_dir, other_name, other, read=True)
        for other_name, other, other_dir in outs[:index]:
            _check_pair(name, path, is_dir, other_name, other, read=False)
            _check_pair(other_name, other, other_dir, name, path, read=False)
        _check_adapter_ancestors(name, path, allowed)
        _check_creatable(name, path, is_dir)


def check_input_file(label: str, path: PathLike) -> Path:
    """An input that must be a readable file; InputError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{label} {path} is a folder: expected a file. Name the file in it.")
    if not path.exists():
        raise InputError(f"{label} {path} does not exist: expected a file. Check the path.")
    if not os.access(path, os.R_OK):
        raise InputError(f"{label} {path} cannot be read: expected a readable file. Check its permissions.")
    return path


def check_input_folder(label: str, path: PathLike) -> Path:
    """An input that must be a folder; InputError saying what it is instead."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{label} {path} is a file: expected a folder. Name the folder that holds it.")
    if not path.exists():
        raise InputError(f"{label} {path} does not exist: expected a folder. Check the path.")
    return path


def is_adapter_dir(path: PathLike) -> bool:
    """A PEFT adapter directory (it holds adapter_config.json)."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def is_finished_adapter(path: PathLike) -> bool:
    """A complete adapter of this project: its config and weights, and the metrics.json it ends with."""
    return all((Path(path) / name).is_file() for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, METRICS_FILE))


def check_directory_output(label: str, path: PathLike, accept: Callable[[Path], bool] | None = None,
                           fix: str = "Choose a new or empty folder.") -> bool:
    """A directory output must be new, empty or one that `accept` recognises (a command's own earlier
    output); returns whether it holds something. OutputError naming what is there otherwise."""
    path = Path(path)
    if not path.is_dir():
        return False
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return False
    if accept is not None and accept(path):
        return True
    shown = ", ".join(entries[:SHOWN_ENTRIES]) + (f" and {len(entries) - SHOWN_ENTRIES} more"
                                                  if len(entries) > SHOWN_ENTRIES else "")
    raise OutputError(f"{label} {path} is not empty (it holds {shown}): expected a new or empty folder, so that "
                      f"nothing in it is written over. {fix}")


def check_adapter_output(label: str, path: PathLike, overwrite: bool) -> bool:
    """An adapter's output folder: new or empty (False), or a finished adapter that `overwrite`
    (--overwrite) allows to replace (True); OutputError otherwise, naming what is there."""
    if not overwrite and is_finished_adapter(path):
        raise OutputError(f"{label} {path} holds a finished adapter: pass --overwrite to replace it (the old one "
                          "is removed only once the new one is complete), or choose another folder.")
    return check_directory_output(label, path, is_finished_adapter if overwrite else None,
                                  "Choose a new or empty folder (--overwrite replaces a finished adapter only).")


@contextmanager
def replacing_directory(target: PathLike) -> Iterator[Path]:
    """A fresh folder to build the new `target` in, put in its place once the body has finished:
    the old `target` (if any) is removed only after the new one is in place; if the body fails or
    is interrupted, the new one is removed and the old one stays as it was. The folder yielded is
    PARENT/.NAME.new-XXXXXXXX/NAME: the same name as target, for files that record it."""
    target = Path(target)
    prefix = temporary_name(target, ".new-", reserve=8).name  # mkdtemp adds 8 random characters
    holder = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    built = holder / target.name
    try:
        yield built
        _swap(built, target, holder / ".old")
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _swap(built: Path, target: Path, old: Path) -> None:
    """Move `target` (if any) to `old`, then `built` to `target`; on failure put the old one back."""
    if not built.is_dir():
        raise OutputError(f"nothing was built to replace {target} with: expected the folder {built}.")
    moved = target.exists()
    if moved:
        os.replace(target, old)
    try:
        os.replace(built, target)
    except OSError:
        if moved:
            os.replace(old, target)
        raise


def _resolved(paths: Paths) -> list[tuple[str, str, Path]]:
    """(label, the name messages give it, resolved path) for each path given (a label may have
    several); the name is the label and the path as given, plus where it leads when a symlink or
    `..` takes it elsewhere."""
    found = []
    for label, value in paths.items():
        many = isinstance(value, Sequence) and not isinstance(value, str)
        for given in (Path(path) for path in (value if many else [value]) if path is not None):
            resolved = given.resolve()
            name = f"{label} {given}" + (f" (that is {resolved})" if resolved != given.absolute() else "")
            found.append((label, name, resolved))
    return found


def _check_name(name: str, path: Path) -> None:
    limit = name_max(path.parent)
    if len(os.fsencode(path.name)) > limit:
        raise OutputError(f"{name}: the file name has {len(os.fsencode(path.name))} bytes, and its folder "
                          f"takes at most {limit}. Choose a shorter name.")


def _check_pair(name: str, path: Path, is_dir: bool, other_name: str, other: Path, read: bool) -> None:
    """Refuse when the output `path` is `other` (an input if `read`, else another output), lies
    inside it (an adapter it reads, or a folder output) or, being a folder, holds it."""
    if path == other or (path.exists() and other.exists() and os.path.samefile(path, other)):
        raise OutputError(f"{name} and {other_name} are the same file: a command never writes over a file it "
                          f"reads or over another of its outputs. Choose another path for {name.split()[0]}.")
    if is_dir and other.is_relative_to(path):
        raise OutputError(f"{name} holds {other_name}: expected a folder that holds none of the command's "
                          f"inputs or other outputs. Choose another folder for {name.split()[0]}.")
    if path.is_relative_to(other) and (not read or is_adapter_dir(other)):
        raise OutputError(f"{name} is inside {other_name}: a command never writes into a "
                          f"folder it reads or into another of its outputs. Choose a path outside it.")


def _check_adapter_ancestors(name: str, path: Path, allowed: Path | None) -> None:
    for folder in path.parents:
        if folder == allowed:
            return
        if is_adapter_dir(folder):
            raise OutputError(f"{name} is inside the adapter directory {folder}: a command writes into "
                              "no adapter it did not make (its metrics.json, card or weights could be replaced). "
                              "Choose a path outside it.")


def _check_creatable(name: str, path: Path, is_dir: bool) -> None:
    """The output's folder exists (for a folder output: the nearest existing one) and takes a new file."""
    if is_dir:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{name} is a file: expected a folder to write into. Choose a folder.")
        folder = path
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{name} cannot be created: {folder} is a file, not a folder. "
                              "Choose another path.")
    else:
        if path.is_dir():
            raise OutputError(f"{name} is a folder: expected a file name. Name a file in it.")
        folder = path.parent
        if not folder.is_dir():
            what = "is a file" if folder.exists() else "does not exist"
            raise OutputError(f"cannot write {name}: the folder {folder} {what}. Create the folder "
                              "first or choose another path.")
    _probe(name, path, folder)


def _probe(name: str, path: Path, folder: Path) -> None:
    """Create and delete a temporary file in `folder`, named as the real temporary beside `path` would be."""
    probe = temporary_name(folder / path.name, f".{os.getpid()}.probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write {name}: the folder {folder} takes no new file ({err.strerror}). "
                          "Check its permissions and free space, or choose another folder.") from None


@contextmanager
def writing(label: str, path: PathLike) -> Iterator[None]:
    """An OSError while writing the output `path` becomes an OutputError naming it."""
    try:
        yield
    except OSError as err:
        raise OutputError(f"cannot write {label} {path}: {err.strerror or err}. Check the free space and the "
                          "folder's permissions.") from None
