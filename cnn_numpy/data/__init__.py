"""Data: IDX file reading, safe downloads, and the named datasets (MNIST and friends)."""

from .datasets import (
    DATASETS,
    Dataset,
    available_datasets,
    default_cache_dir,
    find_or_download,
    load_dataset,
)
from .download import download_file, mirrors_from_env
from .folder import load_images, load_npz, save_npz
from .idx import (
    DataError,
    load_images_and_labels,
    md5_of_content,
    read_idx,
    read_images,
    read_labels,
    write_idx,
)

__all__ = [
    "DATASETS",
    "available_datasets",
    "DataError",
    "Dataset",
    "default_cache_dir",
    "download_file",
    "find_or_download",
    "load_dataset",
    "load_images",
    "load_images_and_labels",
    "load_npz",
    "md5_of_content",
    "mirrors_from_env",
    "read_idx",
    "read_images",
    "read_labels",
    "save_npz",
    "write_idx",
]
