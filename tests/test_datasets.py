"""Named datasets: the bundled sample, splits, local-file validation, Fashion-MNIST."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from cnn_numpy.data import (
    DATASETS,
    DataError,
    Dataset,
    default_cache_dir,
    find_or_download,
    load_dataset,
    load_images_and_labels,
)
from cnn_numpy.data.datasets import FILES

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
T10K = {name: md5 for name, md5 in FILES["mnist"].items() if name.startswith("t10k")}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch the real cache, and never reach the network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CNN_NUMPY_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", "http://127.0.0.1:9/")


@pytest.fixture
def sample_dir(tmp_path) -> Path:
    """A folder holding copies of the bundled t10k files."""
    folder = tmp_path / "sample-copy"
    folder.mkdir()
    bundled = resources.files("cnn_numpy.data") / "mnist_sample"
    for name in T10K:
        with resources.as_file(bundled / (name + ".gz")) as path:
            shutil.copy(path, folder)
    return folder


@pytest.fixture
def raw_sample(sample_dir) -> tuple[np.ndarray, np.ndarray]:
    """The bundled 10k images and labels, read directly."""
    return load_images_and_labels(
        sample_dir / "t10k-images-idx3-ubyte.gz", sample_dir / "t10k-labels-idx1-ubyte.gz"
    )


def examples(x: np.ndarray, y: np.ndarray) -> Counter:
    """The multiset of (image, label) pairs, to compare splits with the raw data."""
    return Counter((image.tobytes(), int(label)) for image, label in zip(x, y, strict=True))


def check_arrays(data: Dataset, n_train: int, n_test: int) -> None:
    assert data.x_train.shape == (n_train, 28, 28) and data.x_test.shape == (n_test, 28, 28)
    assert data.y_train.shape == (n_train,) and data.y_test.shape == (n_test,)
    for x in (data.x_train, data.x_test):
        assert x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
    for y in (data.y_train, data.y_test):
        assert y.dtype == np.int64
        assert set(np.unique(y)) <= set(range(10))
    assert data.num_classes == 10


def test_sample_shapes_dtypes_and_ranges():
    data = load_dataset("mnist-sample")
    assert data.name == "mnist-sample"
    assert "sample" in data.source
    check_arrays(data, 9000, 1000)
    assert len(np.unique(data.y_test)) == 10
    assert "train=9000" in repr(data)


def test_sample_split_is_fixed_and_a_partition_of_the_raw_10k(raw_sample):
    a = load_dataset("mnist-sample")
    b = load_dataset("mnist-sample", seed=123)  # the sample split ignores the seed
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    train, test = examples(a.x_train, a.y_train), examples(a.x_test, a.y_test)
    assert train + test == examples(*raw_sample)


def test_split_fraction_pools_and_resplits(raw_sample):
    data = load_dataset("mnist-sample", split=0.95)
    check_arrays(data, 9500, 500)
    pooled = examples(data.x_train, data.y_train) + examples(data.x_test, data.y_test)
    assert pooled == examples(*raw_sample)

    same = load_dataset("mnist-sample", split=0.95)
    other = load_dataset("mnist-sample", split=0.95, seed=1)
    assert np.array_equal(data.y_train, same.y_train) and np.array_equal(data.x_test, same.x_test)
    assert not np.array_equal(data.x_test, other.x_test)


@pytest.mark.parametrize("split", [0, 1, 1.5, -0.1, float("nan"), True, "0.9"])
def test_split_out_of_range(split):
    with pytest.raises(DataError, match="split"):
        load_dataset("mnist-sample", split=split)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(DataError) as info:
        load_dataset("cifar-10")
    for name in DATASETS:
        assert name in str(info.value)


def test_the_sample_is_not_downloadable():
    with pytest.raises(DataError, match="mnist-sample"):
        find_or_download("mnist-sample")


def test_default_cache_dir(monkeypatch, tmp_path):
    assert default_cache_dir() == tmp_path / "cache" / "cnn-numpy"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "cnn-numpy"


def test_local_files_are_accepted(sample_dir):
    assert find_or_download("mnist", sample_dir, download=False, files=T10K) == sample_dir


def test_uncompressed_local_files_are_accepted(sample_dir):
    for gz in list(sample_dir.iterdir()):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert find_or_download("mnist", sample_dir, download=False, files=T10K) == sample_dir


def test_files_in_a_dataset_subfolder_of_cnn_numpy_data_are_found(sample_dir, monkeypatch):
    monkeypatch.setenv("CNN_NUMPY_DATA", str(sample_dir.parent))
    sample_dir.rename(sample_dir.parent / "mnist")
    found = find_or_download("mnist", download=False, files=T10K)
    assert found == sample_dir.parent / "mnist"


def test_corrupted_local_file_is_rejected_naming_it(sample_dir):
    labels = sample_dir / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[-1] = (content[-1] + 1) % 10  # still a valid IDX file, but not the official one
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*checksum") as info:
        find_or_download("mnist", sample_dir, download=False, files=T10K)
    assert "Delete it" in str(info.value)


def test_missing_files_without_download_say_where_we_looked(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=empty, download=False)
    message = str(info.value)
    assert str(empty) in message
    assert str(tmp_path / "cache" / "cnn-numpy" / "mnist") in message
    assert "--data-dir" in message
    assert list(empty.iterdir()) == []


def test_default_without_download_falls_back_to_the_sample(tmp_path):
    lines: list[str] = []
    data = load_dataset(download=False, log=lines.append)
    assert data.name == "mnist-sample"
    assert len(lines) == 1


@pytest.mark.skipif(
    not FASHION_DIR.is_dir(),
    reason=f"{FASHION_DIR} not found; `apt-get install dataset-fashion-mnist` provides it",
)
def test_fashion_mnist_from_the_debian_package():
    data = load_dataset("fashion-mnist", download=False, progress=False)
    assert data.source == str(FASHION_DIR)
    check_arrays(data, 60000, 10000)
    assert len(np.unique(data.y_train)) == 10


def test_default_reports_a_damaged_local_mnist_instead_of_falling_back(sample_dir):
    """Full-MNIST files that are present but wrong are an error, not a silent switch to
    the sample: the user would want to know their copy is damaged."""
    from cnn_numpy.data import write_idx

    write_idx(sample_dir / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8), gz=True)
    write_idx(sample_dir / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), gz=True)
    lines: list[str] = []
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: checksum mismatch"):
        load_dataset(None, sample_dir, download=False, log=lines.append)
    assert lines == []
