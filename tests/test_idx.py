"""The IDX reader: round trips, every kind of broken file, and a fuzz test."""

from __future__ import annotations

import gzip
import math
import struct
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_numpy.data import (
    DataError,
    load_images_and_labels,
    md5_of_content,
    read_idx,
    read_images,
    read_labels,
    write_idx,
)

rng = np.random.default_rng(1)
IMAGES = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
LABELS = np.array([0, 9, 3, 3, 7], dtype=np.uint8)


def header(type_code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("gz", [False, True])
def test_images_and_labels_round_trip(tmp_path, gz):
    write_idx(tmp_path / "images", IMAGES, gz=gz)
    write_idx(tmp_path / "labels", LABELS, gz=gz)
    assert np.array_equal(read_images(tmp_path / "images"), IMAGES)
    assert np.array_equal(read_labels(tmp_path / "labels"), LABELS)

    X, y = load_images_and_labels(tmp_path / "images", tmp_path / "labels")
    assert X.dtype == np.float32 and X.shape == (5, 4, 3)
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert np.allclose(X * 255, IMAGES)
    assert y.dtype == np.int64 and np.array_equal(y, LABELS)


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "<i2", "i4", "f4", ">f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_every_idx_type_round_trips(tmp_path, dtype, gz):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if array.dtype.kind == "u":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "f", array, gz=gz)
    back = read_idx(tmp_path / "f")
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative
    assert np.array_equal(back, array)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    write_idx(tmp_path / "images.raw", IMAGES, gz=True)  # gzipped, misleading name
    write_idx(tmp_path / "images.gz", IMAGES, gz=False)  # raw, misleading name
    assert np.array_equal(read_idx(tmp_path / "images.raw"), IMAGES)
    assert np.array_equal(read_idx(tmp_path / "images.gz"), IMAGES)


def test_md5_of_content_ignores_compression(tmp_path):
    write_idx(tmp_path / "raw", IMAGES)
    write_idx(tmp_path / "zipped", IMAGES, gz=True)
    assert md5_of_content(tmp_path / "raw") == md5_of_content(tmp_path / "zipped")
    assert (tmp_path / "raw").read_bytes() != (tmp_path / "zipped").read_bytes()


def raw_labels() -> bytes:
    return header(0x08, (5,)) + LABELS.tobytes()


BAD_FILES = {
    "wrong magic": b"\x01\x00" + raw_labels()[2:],
    "unknown type code": header(0x0A, (5,)) + LABELS.tobytes(),
    "ndim 0": bytes([0, 0, 0x08, 0]),
    "empty file": b"",
    "short header": b"\x00\x00\x08",
    "dims cut short": header(0x08, (5, 4, 3))[:9],
    "truncated data": raw_labels()[:-1],
    "trailing bytes": raw_labels() + b"\x00",
    "empty but too big for numpy": header(0x08, (0, 2**32 - 1, 2**32 - 1, 2**32 - 1)),
    "gzip garbage": b"\x1f\x8b" + b"this is not deflate data at all",
    "truncated gzip": gzip.compress(raw_labels())[:-6],
    "bad gzip crc": gzip.compress(raw_labels())[:-8] + b"\x00\x00\x00\x00" + b"\x05\x00\x00\x00",
    "gzip junk after member": gzip.compress(raw_labels()) + b"junk",
}


@pytest.mark.parametrize("problem", BAD_FILES)
def test_bad_files_raise_data_error_naming_the_file(tmp_path, problem):
    path = tmp_path / "broken-file"
    path.write_bytes(BAD_FILES[problem])
    with pytest.raises(DataError, match="broken-file"):
        read_idx(path)


def test_error_messages_say_what_is_wrong(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(raw_labels()[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    path.write_bytes(raw_labels() + b"xyz")
    with pytest.raises(DataError, match="trailing"):
        read_idx(path)
    path.write_bytes(header(0x0A, (5,)) + LABELS.tobytes())
    with pytest.raises(DataError, match="type code 0x0A"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_huge_header_dims_fail_fast_without_allocating(tmp_path, gz):
    content = header(0x0E, (2**32 - 1, 2**32 - 1, 2**32 - 1)) + b"\x00" * 100
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(content) if gz else content)
    start = time.perf_counter()
    tracemalloc.start()
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 8_000_000  # the header claims 2**96 numbers: only read buffers are allocated


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="folder"):
        read_idx(tmp_path)


def test_labels_out_of_range(tmp_path):
    write_idx(tmp_path / "labels", np.array([1, 2, 10], dtype=np.uint8))
    with pytest.raises(DataError, match="out of range"):
        read_labels(tmp_path / "labels")
    assert read_labels(tmp_path / "labels", num_classes=11).tolist() == [1, 2, 10]
    with pytest.raises(DataError, match="out of range"):
        read_labels(tmp_path / "labels", num_classes=3)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((5, 4), np.uint8),
        np.zeros((5, 4, 3, 1), np.uint8),
        np.zeros((5, 4, 3), np.float32),
        np.zeros((5, 4, 3), np.int8),
    ],
)
def test_images_must_be_3d_uint8(tmp_path, array):
    write_idx(tmp_path / "images", array)
    with pytest.raises(DataError, match="3-D uint8"):
        read_images(tmp_path / "images")


@pytest.mark.parametrize("array", [np.zeros((5, 1), np.uint8), np.zeros(5, np.int32)])
def test_labels_must_be_1d_uint8(tmp_path, array):
    write_idx(tmp_path / "labels", array)
    with pytest.raises(DataError, match="1-D uint8"):
        read_labels(tmp_path / "labels")


def test_mismatched_counts_name_both_files(tmp_path):
    write_idx(tmp_path / "imgs", IMAGES)
    write_idx(tmp_path / "lbls", LABELS[:4])
    with pytest.raises(DataError, match="imgs.*lbls"):
        load_images_and_labels(tmp_path / "imgs", tmp_path / "lbls")


def test_write_idx_rejects_what_idx_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "f", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "f", np.array(3, np.uint8))


# ---------------------------------------------------------------- fuzzing

TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def reference_parse(blob: bytes) -> np.ndarray | None:
    """An independent, all-in-memory IDX parser: the array, or None if the file is invalid."""
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except Exception:
            return None
    if len(blob) < 4 or blob[:2] != b"\x00\x00" or blob[2] not in TYPES or blob[3] == 0:
        return None
    ndim = blob[3]
    if len(blob) < 4 + 4 * ndim:
        return None
    dims = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    dtype = np.dtype(TYPES[blob[2]])
    if len(blob) != 4 + 4 * ndim + math.prod(dims) * dtype.itemsize:
        return None
    try:
        return np.frombuffer(blob, dtype, offset=4 + 4 * ndim).reshape(dims)
    except ValueError:  # e.g. shape (0, 2**31, 2**31): empty, but too big for NumPy
        return None


@st.composite
def idx_files(draw) -> bytes:
    """A small valid IDX file, then zero or more mutations, maybe gzipped and mangled."""
    type_code = draw(st.sampled_from(sorted(TYPES)))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    size = math.prod(shape) * np.dtype(TYPES[type_code]).itemsize
    blob = bytearray(
        header(type_code, tuple(shape)) + draw(st.binary(min_size=size, max_size=size))
    )

    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(["byte", "dim", "ndim", "truncate", "append"]))
        if mutation == "byte" and blob:
            blob[draw(st.integers(0, min(len(blob), 16) - 1))] = draw(st.integers(0, 255))
        elif mutation == "dim" and len(blob) >= 8:
            slot = draw(st.integers(0, (len(blob) - 4) // 4 - 1))
            value = draw(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)))
            blob[4 + 4 * slot : 8 + 4 * slot] = struct.pack(">I", value)
        elif mutation == "ndim" and len(blob) >= 4:
            blob[3] = draw(st.integers(0, 255))
        elif mutation == "truncate":
            del blob[draw(st.integers(0, len(blob))) :]
        elif mutation == "append":
            blob += draw(st.binary(min_size=1, max_size=20))

    wrapping = draw(st.sampled_from(["raw", "gzip", "gzip-mangled", "gzip-magic-junk"]))
    if wrapping == "gzip":
        return gzip.compress(bytes(blob), mtime=0)
    if wrapping == "gzip-mangled":
        zipped = bytearray(gzip.compress(bytes(blob), mtime=0))
        where = draw(st.integers(0, len(zipped) - 1))
        how = draw(st.sampled_from(["flip", "truncate", "append"]))
        if how == "flip":
            zipped[where] ^= draw(st.integers(1, 255))
        elif how == "truncate":
            del zipped[where:]
        else:
            zipped += draw(st.binary(min_size=1, max_size=20))
        return bytes(zipped)
    if wrapping == "gzip-magic-junk":
        return b"\x1f\x8b" + draw(st.binary(max_size=60))
    return bytes(blob)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=200, deadline=None)
@given(blob=idx_files())
def test_fuzz_read_idx_returns_the_right_array_or_raises_data_error(fuzz_dir, blob):
    path = fuzz_dir / "fuzzed"
    path.write_bytes(blob)
    expected = reference_parse(blob)
    if expected is None:
        tracemalloc.start()
        try:
            with pytest.raises(DataError):
                read_idx(path)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 8_000_000 + 50 * len(blob)  # bounded by the file, whatever its header says
    else:
        got = read_idx(path)
        assert got.dtype == expected.dtype.newbyteorder("=")
        assert got.shape == expected.shape
        assert got.tobytes() == expected.astype(got.dtype).tobytes()
