"""CIFAR-10 data: fetch and verify (cifar10), split and normalize (preprocess) and a synthetic
stand-in (synthetic).

Modules: download (HTTP with resume + MD5), extract (safe tar extraction),
safe_pickle (restricted unpickler), batches (one file -> arrays).
"""

from cs_nets.data.cifar10 import (
    OFFICIAL,
    OFFICIAL_FILE_MD5,
    ArchiveSpec,
    RawCifar,
    data_fingerprint,
    describe,
    download_cifar10,
    ensure_cifar10,
    load_cifar10,
    resolve_data_dir,
)
from cs_nets.data.preprocess import Normalizer, Split, split_indices, split_train_val
from cs_nets.data.synthetic import make_synthetic

__all__ = [
    "OFFICIAL", "OFFICIAL_FILE_MD5", "ArchiveSpec", "RawCifar", "data_fingerprint", "describe",
    "download_cifar10", "ensure_cifar10", "load_cifar10", "resolve_data_dir",
    "Normalizer", "Split", "split_indices", "split_train_val", "make_synthetic",
]
