"""data.source: cifar100 on small archives this file writes, served over a real HTTP server on 127.0.0.1."""

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from archive_writer import _appends, _binput, _int, _ndarray_u1, _str, write_tar_gz
from click.testing import CliRunner

from cs_nets.cli import main
from cs_nets.config import load_config
from cs_nets.data.cifar100 import FILENAME, LABEL_MODES, MD5, download_cifar100, load_cifar100
from cs_nets.data.download import file_md5
from cs_nets.data.synthetic import make_synthetic
from cs_nets.errors import ConfigError, DataError, DownloadError
from cs_nets.runs.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FINE = [f"fine{k:02d}" for k in range(100)]
COARSE = [f"coarse{k:02d}" for k in range(20)]


def split_bytes(X, fine, coarse, label):
    """A CIFAR-100 ``train``/``test`` pickle as Python 2 wrote it: filenames, batch_label, fine/coarse labels, data."""
    out = [b"\x80\x02", b"}", _binput(1), b"("]
    out += [_str(b"filenames"), b"]", *_appends([_str(f"img_{i}.png".encode()) for i in range(len(X))])]
    out += [_str(b"batch_label"), _str(label.encode())]
    out += [_str(b"fine_labels"), b"]", *_appends([_int(int(v)) for v in fine])]
    out += [_str(b"coarse_labels"), b"]", *_appends([_int(int(v)) for v in coarse])]
    out += [_str(b"data"), _ndarray_u1(X), b"u", b"."]
    return b"".join(out)


def meta_bytes(fine_names=FINE, coarse_names=COARSE):
    out = [b"\x80\x02", b"}", _binput(1), b"("]
    out += [_str(b"fine_label_names"), b"]", *_appends([_str(n.encode()) for n in fine_names])]
    out += [_str(b"coarse_label_names"), b"]", *_appends([_str(n.encode()) for n in coarse_names])]
    out += [b"u", b"."]
    return b"".join(out)


def small_cifar100(seed=0, n_train=600, n_test=200):
    """Synthetic images with 100 fine classes; coarse label = fine // 5 (as CIFAR-100's 5 per superclass)."""
    raw = make_synthetic(n_train, n_test, seed=seed, num_classes=100)
    return raw.X_train, raw.y_train, raw.y_train // 5, raw.X_test, raw.y_test, raw.y_test // 5


def write_cifar100(out_dir, data=None, meta=None, extra_members=None):
    """out_dir/cifar-100-python.tar.gz with `data` (small_cifar100's tuple); returns (path, md5)."""
    Xtr, ftr, ctr, Xte, fte, cte = data or small_cifar100()
    members = {
        "cifar-100-python/train": split_bytes(Xtr, ftr, ctr, "training batch 1 of 1"),
        "cifar-100-python/test": split_bytes(Xte, fte, cte, "testing batch 1 of 1"),
        "cifar-100-python/meta": meta if meta is not None else meta_bytes(),
        **(extra_members or {}),
    }
    path = write_tar_gz(Path(out_dir) / FILENAME, members)
    return path, file_md5(path)


@pytest.fixture
def served(cifar_server, tmp_path):
    """(url, md5, data) of a small CIFAR-100 archive on the test server."""
    data = small_cifar100()
    _, md5 = write_cifar100(cifar_server.root, data)
    return cifar_server.url_for(FILENAME), md5, data


@pytest.mark.parametrize("mode", ["fine", "coarse"])
def test_download_verify_extract_and_load_both_label_modes(served, cifar_server, tmp_path, mode):
    url, md5, (Xtr, ftr, ctr, Xte, fte, cte) = served
    folder = download_cifar100(tmp_path, url=url, md5=md5, progress=False)
    assert folder == tmp_path / "cifar-100-python" and not (tmp_path / f"{FILENAME}.part").exists()
    raw = load_cifar100(tmp_path, mode)
    assert np.array_equal(raw.X_train, Xtr) and np.array_equal(raw.X_test, Xte)
    assert np.array_equal(raw.y_train, ftr if mode == "fine" else ctr)
    assert np.array_equal(raw.y_test, fte if mode == "fine" else cte)
    assert raw.class_names == (FINE if mode == "fine" else COARSE) and len(raw.class_names) == LABEL_MODES[mode]
    requests = len(cifar_server.requests)
    download_cifar100(tmp_path, url=url, md5=md5, progress=False)  # complete: no request
    assert len(cifar_server.requests) == requests


def test_a_broken_connection_is_resumed(served, cifar_server, tmp_path):
    url, md5, data = served
    cifar_server.reset()
    cifar_server.cut_next_after(300_000)
    download_cifar100(tmp_path, url=url, md5=md5, progress=False, backoff=0)
    first, second = cifar_server.requests
    offset = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert first.range is None and 0 < offset <= 300_000 and second.status == 206
    assert np.array_equal(load_cifar100(tmp_path).X_train, data[0])


def test_a_wrong_md5_is_refused_and_nothing_is_extracted(served, tmp_path):
    url, md5, _ = served
    with pytest.raises(DownloadError, match="MD5"):
        download_cifar100(tmp_path, url=url, md5="0" * 32, progress=False)
    assert not (tmp_path / "cifar-100-python").exists() and not (tmp_path / FILENAME).exists()


def test_the_official_archive_and_its_md5():
    from cs_nets.data import cifar100

    assert cifar100.URL == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert MD5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert cifar100.expected_md5(None, None, cifar100.URL, cifar100.MD5, print) == MD5  # the official URL is always checked


def hostile_member(kind):
    if kind == "symlink":
        info = tarfile.TarInfo("cifar-100-python/evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return info
    return None


@pytest.mark.parametrize("case, message", [
    ("global", "refusing to unpickle"),
    ("labels", "must be in 0..99"),
    ("names", "has 99 fine_label_names"),
    ("symlink", "is a link"),
    ("missing", "meta missing"),
])
def test_a_hostile_or_broken_archive_is_one_data_error(tmp_path, case, message):
    archive = tmp_path / FILENAME
    if case == "global":
        evil = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
        write_cifar100(tmp_path, extra_members={}, meta=evil)
    elif case == "labels":
        Xtr, ftr, ctr, Xte, fte, cte = small_cifar100()
        ftr = ftr.copy()
        ftr[3] = 100
        write_cifar100(tmp_path, (Xtr, ftr, ctr, Xte, fte, cte))
    elif case == "names":
        write_cifar100(tmp_path, meta=meta_bytes(FINE[:99]))
    elif case == "symlink":
        write_cifar100(tmp_path)
        data = archive.read_bytes()
        import gzip

        raw = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as src, \
                tarfile.open(fileobj=raw, mode="w") as dst:
            for m in src.getmembers():
                dst.addfile(m, src.extractfile(m))
            dst.addfile(hostile_member("symlink"))
        archive.write_bytes(gzip.compress(raw.getvalue()))
    else:
        Xtr, ftr, ctr, Xte, fte, cte = small_cifar100()
        write_tar_gz(archive, {"cifar-100-python/train": split_bytes(Xtr, ftr, ctr, "t"),
                               "cifar-100-python/test": split_bytes(Xte, fte, cte, "t")})
    with pytest.raises(DataError) as err:
        download_cifar100(tmp_path, md5=file_md5(archive), progress=False)  # the archive put there by hand
        load_cifar100(tmp_path, "fine")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_config_keys_of_the_cifar100_source():
    assert load_config(None, ["data.source=cifar100", "data.label_mode=coarse"]).data.label_mode == "coarse"
    with pytest.raises(ConfigError, match="applies to data.source cifar100 only"):
        load_config(None, ["data.label_mode=coarse"])
    with pytest.raises(ConfigError, match="expected one of fine, coarse"):
        load_config(None, ["data.source=cifar100", "data.label_mode=medium"])
    with pytest.raises(ConfigError, match="python archive only"):
        load_config(None, ["data.source=cifar100", "data.format=binary"])


@pytest.mark.slow
@pytest.mark.parametrize("config_name, classes", [("cifar100_softmax", 100), ("cifar100_coarse", 20)])
def test_shipped_configs_train_end_to_end_on_a_served_archive(served, tmp_path, config_name, classes):
    url, md5, _ = served
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--config", str(ROOT / "configs" / f"{config_name}.yaml"),
                                  "--set", f"data.url={url}", "--set", f"data.md5={md5}",
                                  "--set", "data.num_val=100", "--set", "train.num_epochs=2",
                                  "--data-dir", str(tmp_path / "data"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    model, inputs, meta = load_checkpoint(out)
    assert model.num_classes == classes and len(meta["class_names"]) == classes
    summary = json.loads((out / "summary.json").read_text())
    assert np.array(summary["test_confusion"]).shape == (classes, classes)
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(out), "--data-dir", str(tmp_path / "data"),
                                  "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == summary["test_accuracy"]


# Patterns that hard-code CIFAR-10's class count in code (not in prose).
TEN_CLASSES = re.compile(r"num_classes\s*=\s*10\b|NUM_CLASSES\s*=\s*10\b|range\(10\)|np\.eye\(10\)|minlength\s*=\s*10\b"
                         r"|\(\s*10\s*,\s*\)|\[\s*:\s*10\s*\]")
# Where 10 classes are right: CIFAR-10's own file format, and defaults that callers override.
ALLOWED = {
    "cs_nets/data/batches.py": "reads CIFAR-10's files, which hold exactly 10 classes",
    "cs_nets/data/cifar10.py": "CIFAR-10 itself",
    "cs_nets/data/synthetic.py": "the generator's default; a parameter",
    "cs_nets/nn/random_search.py": "a keyword default; runs pass len(class_names)",
}


def test_no_module_assumes_ten_classes():
    found = []
    for path in sorted((ROOT / "cs_nets").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TEN_CLASSES.search(line.split("#")[0]):  # code, not comments
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)
