"""Read and write IDX files, the simple binary format MNIST is distributed in.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, and
then the array data in C order, big-endian:

    bytes 0-1   always 0x00 0x00
    byte  2     type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64)
    byte  3     number of dimensions (ndim)
    ndim * 4    the size of each dimension
    ...         prod(dims) * itemsize bytes of data, nothing more

Files may be gzipped (recognised by the 1f 8b magic bytes, not by the name).
Every problem with a file raises DataError, whose message names the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..files import PathLike

__all__ = [
    "DataError",
    "read_idx",
    "read_images",
    "read_labels",
    "load_images_and_labels",
    "write_idx",
    "md5_of_content",
]

# IDX type code -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_SIZE = 1 << 20  # read in 1 MiB pieces so a lying header never causes a big allocation

REFETCH_HINT = "delete it and download it again (or copy an intact file there)"

# Everything the gzip and zlib modules raise for corrupt, truncated or non-gzip data
# (gzip.BadGzipFile is an OSError).
_READ_ERRORS = (OSError, EOFError, zlib.error)


class DataError(ValueError):
    """A data file is missing, corrupt, or not what it should be."""


@contextmanager
def _open_content(path: Path) -> Iterator[BinaryIO]:
    """Open `path` for reading its (decompressed, if gzipped) content."""
    if not path.exists():
        raise DataError(f"{path}: the file does not exist")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected an IDX file")
    try:
        with open(path, "rb") as raw:
            if raw.read(2) == GZIP_MAGIC:
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    yield unzipped
            else:
                raw.seek(0)
                yield raw
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot be read ({exc}); {REFETCH_HINT}") from exc


def _read_at_most(stream: BinaryIO, limit: int) -> bytearray:
    """Read up to `limit` bytes, in chunks, stopping early at the end of the stream."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = stream.read(min(CHUNK_SIZE, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _read_header(stream: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Read and check the magic number and dimensions; returns (big-endian dtype, shape)."""
    magic = bytes(_read_at_most(stream, 4))
    if len(magic) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(magic)} bytes); {REFETCH_HINT}")
    if magic[:2] != b"\x00\x00":
        raise DataError(
            f"{path}: not an IDX file (starts with {magic[:2].hex(' ')}, expected 00 00); "
            "is it the right file?"
        )
    type_code, ndim = magic[2], magic[3]
    if type_code not in IDX_TYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_TYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: the IDX header says the array has 0 dimensions")
    dim_bytes = bytes(_read_at_most(stream, 4 * ndim))
    if len(dim_bytes) < 4 * ndim:
        raise DataError(
            f"{path}: the header is cut short ({ndim} dimensions need {4 * ndim} bytes, "
            f"found {len(dim_bytes)}); {REFETCH_HINT}"
        )
    shape = struct.unpack(f">{ndim}I", dim_bytes)
    return IDX_TYPES[type_code], shape


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a native-byte-order array of the header's shape.

    The data must be exactly prod(shape) * itemsize bytes: truncated files and
    trailing bytes are both errors. Raises DataError for any problem.
    """
    path = Path(path)
    with _open_content(path) as stream:
        dtype, shape = _read_header(stream, path)
        expected = math.prod(shape) * dtype.itemsize
        # One byte more than expected tells us about trailing data without reading it all.
        data = _read_at_most(stream, expected + 1)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        found = f"{len(data)}" if len(data) < expected else "more"
        raise DataError(
            f"{path}: the file is {problem}: the header says shape {shape} of {dtype.name} "
            f"= {expected} data bytes, found {found}; {REFETCH_HINT}"
        )
    try:
        array = np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as exc:  # an empty array whose other dimensions overflow NumPy's limits
        raise DataError(f"{path}: NumPy cannot represent shape {shape} ({exc})") from exc
    return array.astype(dtype.newbyteorder("="))


def read_images(path: PathLike) -> np.ndarray:
    """Read an IDX image file: uint8 array of shape (n, rows, cols)."""
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{path}: expected images as a 3-D uint8 array (n, rows, cols), "
            f"found {images.ndim}-D {images.dtype} with shape {images.shape}; "
            "is this a labels file?"
        )
    return images


def read_labels(path: PathLike, num_classes: int = 10) -> np.ndarray:
    """Read an IDX label file: uint8 array of shape (n,), every value < num_classes."""
    labels = read_idx(path)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{path}: expected labels as a 1-D uint8 array (n,), "
            f"found {labels.ndim}-D {labels.dtype} with shape {labels.shape}; "
            "is this an images file?"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{path}: label {int(labels.max())} is out of range for {num_classes} classes "
            f"(labels must be 0..{num_classes - 1})"
        )
    return labels


def load_images_and_labels(
    images_path: PathLike, labels_path: PathLike, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Load a matching pair of IDX files.

    Returns X float32 (n, rows, cols) scaled to [0, 1] and y int64 (n,).
    """
    images = read_images(images_path)
    labels = read_labels(labels_path, num_classes)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            "labels; the two files do not belong together"
        )
    X = images.astype(np.float32) / np.float32(255)
    return X, labels.astype(np.int64)


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX: header followed by big-endian data."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(size >= 2**32 for size in array.shape):
        raise ValueError(f"IDX dimensions must be < 2**32, got shape {array.shape}")
    header = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    big_endian = IDX_TYPES[codes[native]]
    return header + np.ascontiguousarray(array, dtype=big_endian).tobytes()


def write_idx(path: PathLike, array: np.ndarray, gz: bool = False) -> None:
    """Write `array` as a valid IDX file (gzipped if gz=True)."""
    content = _idx_bytes(array)
    if gz:
        # mtime=0 makes the output reproducible byte for byte.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(content)
    else:
        Path(path).write_bytes(content)


def md5_of_content(path: PathLike) -> str:
    """MD5 hex digest of the file's decompressed content (gzipped or raw file)."""
    path = Path(path)
    digest = hashlib.md5()
    with _open_content(path) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()
