"""Reading CIFAR-10 from extracted folders and straight from archives, refusing bad files."""

import io
import os
import pickle
import shutil

import numpy as np
import pytest
from archive_writer import python_batch_bytes, write_archive, write_tar_gz

from cs_nets.data import cifar10
from cs_nets.data.cifar10 import OFFICIAL, data_fingerprint, describe, load_cifar10
from cs_nets.data.extract import safe_extract
from cs_nets.data.safe_pickle import load_untrusted
from cs_nets.errors import DataError


@pytest.fixture
def data_dir(small_cifar_archives, tmp_path):
    """A data folder holding both archives, not extracted."""
    folder, _, md5 = small_cifar_archives
    for name in md5:
        shutil.copy(folder / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def dataset(small_cifar_archives):
    return small_cifar_archives[1]


def extract(data_dir, fmt):
    return safe_extract(data_dir / OFFICIAL[fmt].filename, data_dir, OFFICIAL[fmt].folder)


def assert_same(raw, other):
    for key in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(raw, key), getattr(other, key), err_msg=key)
    assert raw.X_train.dtype == np.uint8 and raw.y_train.dtype == np.int64


@pytest.mark.parametrize("fmt", ["python", "binary"])
def test_loading_from_the_archive_equals_loading_the_extracted_folder(data_dir, dataset, fmt):
    before = sorted(p.name for p in data_dir.iterdir())
    from_archive = load_cifar10(data_dir, fmt)
    assert sorted(p.name for p in data_dir.iterdir()) == before  # nothing extracted to disk
    assert from_archive.layout == f"{fmt}-archive"

    extract(data_dir, fmt)
    from_folder = load_cifar10(data_dir, fmt)
    assert from_folder.layout == fmt
    assert_same(from_archive, from_folder)
    assert_same(from_folder, dataset)
    assert from_folder.class_names == from_archive.class_names
    assert from_folder.X_train.shape == (503, 3072)  # uneven batches of 101 and 100


@pytest.mark.parametrize("fmt", ["python", "binary"])
@pytest.mark.parametrize("extracted", [False, True])
def test_training_images_read_into_floats_hold_the_same_pixels_and_fingerprint(data_dir, dataset, fmt, extracted):
    if extracted:
        extract(data_dir, fmt)
    as_bytes = load_cifar10(data_dir, fmt)
    as_floats = load_cifar10(data_dir, fmt, train_dtype="float32")
    assert as_floats.X_train.dtype == np.float32 and as_floats.X_test.dtype == np.uint8
    np.testing.assert_array_equal(as_floats.X_train, as_bytes.X_train.astype(np.float32))
    assert data_fingerprint(as_floats) == data_fingerprint(as_bytes) == data_fingerprint(dataset)
    changed = load_cifar10(data_dir, fmt, train_dtype="float64")
    changed.X_train[-1, -1] = (changed.X_train[-1, -1] + 1) % 256  # one pixel of the last image
    assert data_fingerprint(changed) != data_fingerprint(as_bytes)


def test_without_fmt_the_extracted_python_layout_comes_first(data_dir):
    assert load_cifar10(data_dir).layout == "python-archive"
    extract(data_dir, "binary")
    assert load_cifar10(data_dir).layout == "binary"
    extract(data_dir, "python")
    assert load_cifar10(data_dir).layout == "python"
    assert load_cifar10(data_dir / "cifar-10-batches-bin").layout == "binary"  # the folder itself


def test_missing_data_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path)
    assert str(tmp_path) in str(err.value) and "csnets download" in str(err.value)


def test_class_names_come_from_the_meta_files(tmp_path, dataset):
    names = [f"thing{k}" for k in range(10)]
    for fmt in ("python", "binary"):
        write_archive(tmp_path, dataset.X_train, dataset.y_train, dataset.X_test, dataset.y_test,
                      fmt=fmt, batches=2, class_names=names)
        assert load_cifar10(tmp_path, fmt).class_names == names


# ---------------------------------------------------------------- hostile and broken files

class RunsACommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("where", ["folder", "archive"])
def test_a_pickle_that_would_run_a_command_is_refused(data_dir, tmp_path, where):
    pwned = tmp_path / "pwned"
    evil = pickle.dumps({"data": RunsACommand(f"touch {pwned}"), "labels": []}, protocol=2)
    folder = extract(data_dir, "python")
    (folder / "data_batch_2").write_bytes(evil)
    if where == "archive":
        shutil.rmtree(folder)
        write_tar_gz(data_dir / "cifar-10-python.tar.gz", {"cifar-10-batches-py/data_batch_1": evil})

    with pytest.raises(DataError) as err:
        load_cifar10(data_dir, "python")
    message = str(err.value)
    assert f"'{os.system.__module__}.system'" in message and "data_batch_" in message
    assert "\n" not in message
    assert not pwned.exists()


def test_only_numpy_reconstruction_globals_are_admitted(tmp_path):
    X = np.arange(6, dtype=np.uint8).reshape(2, 3)
    # Python 3 protocol 3 names numpy._core (NumPy 2) or numpy.core (NumPy 1): both load.
    loaded = load_untrusted(io.BytesIO(pickle.dumps({"data": X}, protocol=3)), "p3")
    np.testing.assert_array_equal(loaded["data"], X)
    with pytest.raises(DataError, match="'builtins.eval'"):
        load_untrusted(io.BytesIO(pickle.dumps(eval, protocol=3)), "f")


@pytest.mark.parametrize("fmt,name", [("python", "data_batch_3"), ("binary", "data_batch_3.bin")])
def test_a_truncated_batch_is_a_one_line_error_naming_the_file(data_dir, fmt, name):
    path = extract(data_dir, fmt) / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        load_cifar10(data_dir, fmt)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_archive_is_a_data_error(data_dir):
    archive = data_dir / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:200_000])
    with pytest.raises(DataError, match="truncated or corrupt|incomplete"):
        load_cifar10(data_dir, "python")


@pytest.mark.parametrize("case,expected", [
    ("label_10", r"labels must be in 0..9, found 0..10"),
    ("too_few_labels", r"has 100 images but 99 labels"),
    ("wrong_width", r"expected data of uint8 \(N, 3072\), found uint8 \(100, 3000\)"),
    ("float_data", r"found float32 \(100, 3072\)"),
])
def test_batches_are_validated(data_dir, dataset, case, expected):
    folder = extract(data_dir, "python")
    X, y = dataset.X_train[:100], dataset.y_train[:100].copy()
    if case == "label_10":
        y[5] = 10
    elif case == "too_few_labels":
        y = y[:99]
    elif case == "wrong_width":
        X = X[:, :3000]
    if case == "float_data":
        batch = pickle.dumps({b"data": X.astype(np.float32), b"labels": y.tolist()}, protocol=3)
    else:
        batch = python_batch_bytes(X, y, "training batch 1 of 1", ["a.png"] * len(y))
    (folder / "data_batch_1").write_bytes(batch)
    with pytest.raises(DataError, match=expected):
        load_cifar10(data_dir, "python")


def test_a_binary_batch_must_be_whole_records(data_dir):
    path = extract(data_dir, "binary") / "test_batch.bin"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="not a whole number of 3073-byte records"):
        load_cifar10(data_dir, "binary")


# ---------------------------------------------------------------- describe and fingerprint

def test_describe_reports_layouts_sizes_classes_and_checksums(data_dir, dataset, monkeypatch):
    extract(data_dir, "python")
    real_md5 = cifar10.file_md5(data_dir / "cifar-10-batches-py" / "data_batch_1")
    monkeypatch.setitem(cifar10.OFFICIAL_FILE_MD5, "data_batch_1", real_md5)

    info = describe(data_dir)
    assert info["layouts"]["python"] == {"extracted": str(data_dir / "cifar-10-batches-py"),
                                         "archive": str(data_dir / "cifar-10-python.tar.gz")}
    assert info["layouts"]["binary"]["extracted"] is None
    assert info["layout"] == "python" and info["num_train"] == 503 and info["num_test"] == 101
    counts = np.bincount(dataset.y_train, minlength=10)
    assert list(info["per_class"]["train"].values()) == counts.tolist()
    assert list(info["per_class"]["train"]) == info["class_names"]
    sums = info["checksums"]
    assert sums["cifar-10-batches-py/data_batch_1"]["match"] is True
    assert sums["cifar-10-batches-py/data_batch_2"]["match"] is False
    assert sums["cifar-10-python.tar.gz"] == {
        "expected": OFFICIAL["python"].md5, "found": cifar10.file_md5(data_dir / "cifar-10-python.tar.gz"),
        "match": False}
    assert sums["cifar-10-binary.tar.gz"]["match"] is False
    assert 0 <= info["load_seconds"] < 5
    assert info["fingerprint"] == data_fingerprint(load_cifar10(data_dir))


def test_fingerprint_follows_the_content_not_the_layout(data_dir):
    python, binary = load_cifar10(data_dir, "python"), load_cifar10(data_dir, "binary")
    assert data_fingerprint(python) == data_fingerprint(binary)
    python.X_train[0, 0] ^= 1
    assert data_fingerprint(python) != data_fingerprint(binary)
