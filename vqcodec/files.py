"""Atomic file output (never leave a partial file behind), the clean-up of what a killed writer
left, and the one directory walk every command uses (it skips dot-files and dot-folders).

Temporary names are `.NAME.PID-XXXXXXXX.tmpSUFFIX` (files) and `.NAME.PID-XXXXXXXX` (folders,
`temp_dir`): hidden, so no walk takes them for input, and carrying the writer's process id, so the
next run can tell a killed writer's leftover (its process is gone) from a live one's.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

from .errors import VqcodecError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the destination's folder; rename it onto `path` on success.

    On any exception the temporary file is removed and `path` is left untouched.
    With force=False an existing `path` is refused before anything is written.
    """
    path = Path(path)
    if not force and path.exists():
        raise VqcodecError(f"{path} exists (use -f/--force to overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as e:
        raise VqcodecError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_dir(folder: str | os.PathLike, name: str) -> Path:
    """A new hidden temporary folder `.NAME.PID-XXXXXXXX` in `folder` (see the module docstring)."""
    return Path(tempfile.mkdtemp(prefix=_temp_prefix(name), dir=folder))


def _temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}-"


# .NAME.PID-XXXXXXXX[.tmp[SUFFIX]] (this module's names); .NAME.XXXXXXXX.tmp[SUFFIX] (before the pid)
_TEMP = re.compile(r"^\..+\.(?:(?P<pid>\d+)-[A-Za-z0-9_]{8}(?:\.tmp(?:\.[^.]*)?)?|[A-Za-z0-9_]{8}\.tmp(?:\.[^.]*)?)$")
_LEGACY_AGE_S = 600  # a temp without a pid is taken as stale once this old


def _stale(entry: os.DirEntry) -> bool:
    m = _TEMP.match(entry.name)
    if not m:
        return False
    if m.group("pid") is None:
        try:
            return time.time() - entry.stat(follow_symlinks=False).st_mtime > _LEGACY_AGE_S
        except OSError:
            return False
    pid = int(m.group("pid"))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True  # its writer is gone: killed mid-write
    except (PermissionError, OverflowError, OSError):
        return False  # alive (another user's), or cannot tell: leave it
    return False


def remove_stale_temps(folders: str | os.PathLike | Iterable[str | os.PathLike], recursive: bool = True) -> int:
    """Remove the temporary files and folders of writers that were killed (their process is gone)
    from `folders` (and, with `recursive`, every folder below, dot-folders included); returns how
    many. Run at the start of corpus builds, training and batch commands, so a killed run's
    leftovers go on the next run. Missing folders are ignored."""
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    removed = 0
    todo = [Path(f) for f in folders]
    while todo:
        folder = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if _stale(e):
                with contextlib.suppress(OSError):
                    if e.is_dir(follow_symlinks=False):
                        shutil.rmtree(e.path)
                    else:
                        os.unlink(e.path)
                    removed += 1
            elif recursive and e.is_dir(follow_symlinks=False):
                todo.append(Path(e.path))
    return removed


def walk(root: str | os.PathLike, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Files under `root` (recursively, sorted), with a suffix in `suffixes` (lower-cased; None:
    any), never a dot-file nor anything in a dot-folder below `root`: those are other tools' state
    or a killed writer's leftovers (`.NAME.PID-XXXXXXXX.tmp.wav`), not inputs. Symlinked folders
    are not followed (as `Path.rglob`)."""
    suffixes = None if suffixes is None else {s.lower() for s in suffixes}
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [Path(folder) / n for n in names if not n.startswith(".")
                and (suffixes is None or Path(n).suffix.lower() in suffixes)]
    return sorted(out)
