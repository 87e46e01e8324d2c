"""Files that hold secrets: written atomically with mode 0600 from the first byte.

The agent keeps its signing key, admin token and privacy secret this way, central its keys.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_secret_file(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temp file + rename + fsync).

    With ``exclusive`` an existing file is never replaced: FileExistsError instead, so two
    processes creating the same key at once end up sharing the first one's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
