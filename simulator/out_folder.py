"""Writing into ``--out``: whole folders and files or nothing, one command's results per folder, and file-system
failures as ``KvsimError``s (DESIGN §6, docs/outputs.md "Writing").

- ``atomic_folder(final)``: a run folder is written under a hidden temporary name in the same parent
  (``.<name>.partial-<pid>``) and renamed to ``final`` when complete, so a folder with its final name is always
  whole. An interrupted write leaves at most a hidden partial folder, which readers ignore and the next write
  into the same parent removes.
- ``write_file_atomic(path, write)``: the same for one file (temporary name, then ``os.replace``).
- ``os_errors_named(path, what)``: an ``OSError`` (a file in the way, no permission, read-only or full disk)
  becomes a one-line ``KvsimError`` naming the path and the fix.
- ``claim_out_dir``: the rule that keeps one command's results per ``--out`` (stale folders never merge).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kvsim.errors import KvsimError

# a hidden sibling being written (".<name>.partial-<pid>") or being replaced (".<name>.replaced-<pid>")
TEMPORARY_MARKS = (".partial-", ".replaced-")
# what kvsim commands write at the top of an --out folder, besides run folders: the files that tell whose it is
COMMAND_FILES = {
    "simulate": ("simulate.json", "comparison.csv", "uncertainty"),  # uncertainty: --uncertainty's cases
    "sweep": ("sweep.json", "results.csv", "points"),
    "plan": ("plan.json", "plan.csv"),
}
REPORT_FILE = "report.html"  # `simulate --report` writes it; so may `kvsim report --out` into any of them
COMMAND_RECORD = "simulate.json"  # `kvsim simulate`'s record of what wrote its --out (inputs, folders)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a partial write (or a replaced folder on its way out): never read as a result."""
    name = Path(path).name
    return name.startswith(".") and any(mark in name for mark in TEMPORARY_MARKS)


def _temporary(final: Path, mark: str) -> Path:
    return final.parent / f".{final.name}{mark}{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover (an earlier write of this process that failed): not in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def clean_temporaries(parent: Path) -> list[Path]:
    """Remove the partial writes in ``parent`` left by processes that are gone (or by this one); returns them.
    A partial write of a process still running (another kvsim writing here) is left alone."""
    removed = []
    if not parent.is_dir():
        return removed
    for path in sorted(parent.iterdir()):
        if not is_temporary(path):
            continue
        pid_text = path.name.rsplit("-", 1)[-1]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue
        _remove(path)
        removed.append(path)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def os_errors_named(path: Path, what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a ``KvsimError``: "cannot write <what> <path>: <why>; <fix>"."""
    try:
        yield
    except OSError as exc:
        raise KvsimError(f"cannot write {what} {path}: {explain_os_error(exc)}") from exc


def explain_os_error(exc: OSError) -> str:
    """The cause of ``exc`` in words, with what to do about it."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"the disk is full{where}; free some space or choose another --out (nothing partial was kept)"
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}; choose an --out on a writable disk"
    if isinstance(exc, NotADirectoryError) or exc.errno == errno.ENOTDIR:
        return f"a file is in the way{where}: a folder is needed there; choose another --out"
    if isinstance(exc, IsADirectoryError):
        return f"a folder is in the way{where}; choose another name"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}; choose an --out you can write to"
    if isinstance(exc, FileNotFoundError):
        return f"no such folder{where}, and it cannot be made there; choose another --out"
    return f"{exc.strerror or exc}{where}"


def make_out_folder(out: Path, option: str = "--out") -> None:
    """Make ``out`` (and its parents) before any work, so that a folder that cannot be made (a file in the
    way, no permission, a read-only disk) is refused before a simulation runs, not after it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise KvsimError(f"{option} {out}: is a file, not a folder; choose another {option}")
    file_above = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if file_above is not None:
        raise KvsimError(
            f"{option} {out}: {file_above} is a file, so no folder can be made under it; choose another {option}"
        )
    with os_errors_named(out, f"{option} folder"):
        out.mkdir(parents=True, exist_ok=True)


@contextmanager
def atomic_folder(final: Path, what: str = "run folder") -> Iterator[Path]:
    """Yield an empty hidden folder beside ``final``; when the block ends without error it becomes ``final``
    (replacing an earlier ``final`` whole). On any error, Ctrl-C included, the partial folder is removed and
    ``final`` is as it was; an ``OSError`` comes out as a ``KvsimError`` naming ``final``."""
    final = Path(final)
    partial = _temporary(final, ".partial-")
    with os_errors_named(final, what):
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_temporaries(final.parent)
        partial.mkdir()
    try:
        with os_errors_named(final, what):
            yield partial
            _swap_in(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _swap_in(partial: Path, final: Path) -> None:
    """Rename ``partial`` to ``final``. An existing ``final`` is first renamed aside (a folder cannot be renamed
    over a non-empty one) and removed after, so ``final`` is never a mixture of the two."""
    if final.exists() or final.is_symlink():
        old = _temporary(final, ".replaced-")
        os.rename(final, old)
        os.rename(partial, final)
        _remove(old)
    else:
        os.rename(partial, final)


def write_file_atomic(path: Path, write: Callable[[Path], Any], what: str = "file") -> Path:
    """``write(temporary_path)`` then ``os.replace`` onto ``path``: readers see the old file or the new one,
    never a part. Returns ``path``."""
    path = Path(path)
    partial = _temporary(path, ".partial-")
    try:
        with os_errors_named(path, what):
            path.parent.mkdir(parents=True, exist_ok=True)
            write(partial)
            os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str, what: str = "file") -> Path:
    return write_file_atomic(path, lambda p: p.write_text(text, encoding="utf-8"), what)


def run_folders_in(out: Path) -> list[Path]:
    """The run folders directly inside ``out`` (a folder with ``summary.json`` or ``config.json``), sorted;
    partial writes excluded."""
    if not out.is_dir():
        return []
    return sorted(
        p
        for p in out.iterdir()
        if p.is_dir()
        and not is_temporary(p)
        and ((p / "summary.json").exists() or (p / "config.json").exists())
    )


def commands_in(out: Path) -> list[str]:
    """The kvsim commands whose own files (``COMMAND_FILES``) are in ``out``."""
    return [cmd for cmd, names in COMMAND_FILES.items() if any((out / name).exists() for name in names)]


def clear_outputs(out: Path) -> list[Path]:
    """``--overwrite``: remove what kvsim commands write in ``out`` (run folders, the commands' files, partial
    writes), and nothing else: a file of the user's that happens to be there stays. Returns what went."""
    gone = [*run_folders_in(out)]
    names = [*(name for names in COMMAND_FILES.values() for name in names), REPORT_FILE]
    gone += [out / name for name in names if (out / name).exists()]
    gone += [p for p in (out.iterdir() if out.is_dir() else ()) if is_temporary(p)]
    with os_errors_named(out, "--out folder (clearing it for --overwrite)"):
        for path in gone:
            _remove(path)
    return gone


def canonical(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists, keys as strings), for comparing records."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def input_differences(before: dict, now: dict) -> list[str]:
    """``key before -> now`` for each input that differs, sorted by key."""
    keys = sorted(set(before) | set(now))
    return [f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in keys if before.get(k) != now.get(k)]
