"""Writing files so that a crash never leaves a half-written one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .extras import require

PathLike = str | os.PathLike[str]
"""A file's path as the library's functions take it: a str or a path object."""


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call write(file) on a new temp file beside `path`, fsync it, then rename it onto `path`.

    A crash or SIGKILL at any moment leaves either the old file or the new
    one, never a mix; on an exception the temp file is removed.  The new
    file gets the usual permissions (0666 less the umask).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        f = open(tmp, "xb")
    except OSError as exc:  # the folder is missing, not a folder or not writable
        raise _about(exc, path) from None
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:  # e.g. path is a folder
            raise _about(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


#: The picture formats written, by file suffix: what matplotlib writes the figures as
#: (visual.plots.save_figure) ...
FIGURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}
#: ... and what Pillow writes a picture of pixels as (data.images.save_digit_strip).
PIXEL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def picture_format(path: PathLike, what: str = "picture", formats: dict = FIGURE_FORMATS) -> str:
    """The format a picture at `path` is written in, from its suffix (any case), e.g. 'jpeg'
    for .jpg; a ValueError naming the supported suffixes for any other suffix or none."""
    suffix = Path(path).suffix
    if suffix.lower() not in formats:
        said = f"the suffix {suffix}" if suffix else "no suffix"
        raise ValueError(f"{what} {path}: a picture's format follows its suffix, and {said} is "
                         f"not one written here; use {', '.join(formats)}")
    return formats[suffix.lower()]


def check_picture(path: PathLike, what: str, formats: dict = FIGURE_FORMATS) -> Path:
    """check_writable(path, what), a suffix the picture can be written as (for
    formats=PIXEL_FORMATS: a picture written by Pillow), and the library that draws it
    installed (an ImportError naming the extra otherwise); before minutes of work."""
    picture_format(path, what, formats)
    pixels = formats is PIXEL_FORMATS  # drawn by Pillow, the others by matplotlib
    require("PIL" if pixels else "matplotlib", "plots", needed_for=f"{what} {path}: drawing a "
            "picture", package="Pillow" if pixels else None)
    return check_writable(path, what)


def _about(exc: OSError, path: Path) -> OSError:
    """`exc`, raised on atomic_write's temp file or rename, told about the caller's `path`:
    the same OSError subclass and errno, filename=path, and the reason in words."""
    folder = path.parent
    if path.is_dir():
        reason = "is a folder; give a file name"
    elif not folder.exists():
        reason = f"the folder {folder} does not exist; create it first"
    elif not folder.is_dir():
        reason = f"{folder} is not a folder"
    elif isinstance(exc, PermissionError):
        reason = f"the folder {folder} is not writable"
    else:
        reason = exc.strerror or str(exc)
    return type(exc)(exc.errno, reason, str(path))


def check_writable(path: PathLike, what: str) -> Path:
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
