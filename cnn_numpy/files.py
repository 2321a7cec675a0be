"""Writing files so that a crash never leaves a half-written one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path, write: Callable[[BinaryIO], object]) -> None:
    """Call write(file) on a new temp file beside `path`, fsync it, then rename it onto `path`.

    A crash or SIGKILL at any moment leaves either the old file or the new
    one, never a mix; on an exception the temp file is removed.  The new
    file gets the usual permissions (0666 less the umask).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def check_writable(path, what: str) -> Path:
    """`path` as a Path if a file can be written there, else a ValueError saying why.

    For checking an output path before minutes of work, not after.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise ValueError(f"{what} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{what} {path}: the folder {folder} is not writable")
    return path
