"""Files written atomically: a temporary file in the target's folder, flushed and
synced, renamed over the target; temporaries left by a dead writer are removed.
"""
from __future__ import annotations

import os
import stat
import tempfile
from typing import Any, BinaryIO, Callable, List, Optional, Tuple

from .._validate import writable_file_path

try:  # POSIX: temporaries are locked while written, so dead writers' files can be told apart
    import fcntl
except ImportError:  # pragma: no cover - Windows: no clean-up of dead writers' temporaries
    fcntl = None  # type: ignore[assignment]


_RANDOM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")  # tempfile's names


def _temp_prefix(path: str) -> Tuple[str, str]:
    """(folder, prefix) of the temporaries written for path: the name ties them to it."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise IsADirectoryError(f"path: expected a file path, got the folder {path!r}")
    base = base.encode("utf-8", "surrogateescape")[:160].decode("utf-8", "ignore")
    return folder, f".rnnpy-{base}."


def remove_dead_temporaries(path: str, suffix: str = ".tmp") -> List[str]:
    """Removes the temporaries that writers of path left when they died
    (killed mid-save): those named for path whose lock can be taken. A live
    writer holds its lock, so its file is never touched. Returns the removed
    paths. A no-op where fcntl is unavailable."""
    if fcntl is None:
        return []
    folder, prefix = _temp_prefix(os.fspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        middle = name[len(prefix):len(name) - len(suffix)]
        if not middle or not set(middle) <= _RANDOM_CHARS:
            continue   # another target's temporary, or not ours at all
        full = os.path.join(folder, name)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue   # its writer is alive
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and os.path.samestat(os.lstat(full), st):
                os.unlink(full)
                removed.append(full)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _locked_temporary(folder: str, prefix: str, suffix: str) -> Tuple[int, str]:
    """A new temporary file, exclusively locked, still under its name."""
    for _ in range(100):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.path.samestat(os.stat(tmp), os.fstat(fd)):
                return fd, tmp
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)   # a clean-up took it between its creation and our lock: take another
    raise OSError(f"path: could not create a temporary file in {folder!r}")


def atomic_write(path: str, write: Callable[[BinaryIO], Any], suffix: str = ".tmp",
                 verify: Optional[Callable[[str], None]] = None) -> None:
    """Calls write(f) on a temporary file beside path, flushes it to disk and
    renames it over path, so path holds either its old content or all of the
    new one, never part of it.

    The temporary is named after path and locked while written; temporaries
    of path left by dead writers are removed first (remove_dead_temporaries).
    verify(tmp), when given, runs on the complete temporary before the
    rename; if it raises, path is left as it was. The temporary is removed if
    anything fails."""
    path = writable_file_path(path)
    folder, prefix = _temp_prefix(path)
    remove_dead_temporaries(path, suffix)
    try:
        fd, tmp = _locked_temporary(folder, prefix, suffix)
    except PermissionError as exc:
        raise PermissionError(f"path: no permission to write in the folder {folder!r}; "
                              f"{path!r} was not written") from None
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb", closefd=False) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)   # releases the lock
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
