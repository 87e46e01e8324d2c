"""Owner-only state: directories 0700, files 0600 from the first byte, secrets written atomically.

The agent keeps its signing key, admin token and privacy secret this way, central its keys;
both sides' databases and data dirs are created through :func:`ensure_private_dir` and
:func:`ensure_private_file`, so the devices' real names (often pupils' names) are never
readable by other users of the server, whatever the umask or whoever made the directory.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: Path, *, tighten: bool = False) -> list[Path]:
    """Create ``path`` and its missing parents with mode 0700; returns the directories created, outermost first.

    With ``tighten`` an existing ``path`` that group or others may enter is set to 0700 when this
    process may change it (its owner, or root), with a warning naming it. Raises OSError when a
    directory cannot be created.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    created: list[Path] = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it a moment ago
        os.chmod(directory, DIR_MODE)  # mkdir's mode passes through the umask; chmod does not
        created.append(directory)
    if tighten and not created:
        info = path.stat()
        if info.st_mode & 0o077 and os.geteuid() in (0, info.st_uid):
            os.chmod(path, DIR_MODE)
            log.warning("%s was mode %04o: set to 0700 (it holds private state)", path, stat.S_IMODE(info.st_mode))
    return created


def ensure_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; an existing one wider than 0600 is set to 0600.

    Returns True when the file was created here. SQLite gives its ``-wal`` and ``-shm`` files
    the main database file's mode, so creating the database this way covers them too.
    Raises OSError when the file cannot be created.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and os.geteuid() in (0, info.st_uid):
            os.chmod(path, FILE_MODE)
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def write_secret_file(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temp file + rename + fsync).

    With ``exclusive`` an existing file is never replaced: FileExistsError instead, so two
    processes creating the same key at once end up sharing the first one's.
    """
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask must not widen it, nor an old file's mode
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if exclusive:
        try:
            os.link(tmp, path)  # fails if the file exists: the create-if-absent is atomic
        finally:
            os.unlink(tmp)
    else:
        os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_secret_file(path: Path) -> bytes:
    """Read a secret file; OSError propagates so the caller can say which file failed."""
    return path.read_bytes()
