"""Download, verify and extract CIFAR-10 archives from a real HTTP server on 127.0.0.1."""

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from archive_writer import write_tar_gz

from cs_nets.data.cifar10 import download_cifar10, load_cifar10, resolve_data_dir
from cs_nets.data.download import fetch
from cs_nets.data.extract import safe_extract
from cs_nets.errors import ConfigError, DataError, DownloadError

PY = "cifar-10-python.tar.gz"
FAST = {"progress": False, "retries": 2, "backoff": 0.01}  # no bar, quick retries


def download(server, data_dir, name=PY, fmt="python", **kwargs):
    lines = []
    options = {**FAST, "md5": server.md5.get(name), **kwargs}
    folder = download_cifar10(data_dir, fmt, url=server.url_for(name), log=lines.append, **options)
    return folder, lines


def assert_same(raw, dataset):
    for key in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(raw, key), getattr(dataset, key), err_msg=key)


def leftovers(data_dir):
    """Temporary or partial files a download must not leave behind."""
    return sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".extract") or p.suffix == ".part")


@pytest.mark.parametrize("fmt,name,folder_name", [
    ("python", "cifar-10-python.tar.gz", "cifar-10-batches-py"),
    ("binary", "cifar-10-binary.tar.gz", "cifar-10-batches-bin"),
])
def test_download_extract_and_load_both_layouts(cifar_server, tmp_path, fmt, name, folder_name):
    folder, lines = download(cifar_server, tmp_path, name, fmt)

    assert folder == tmp_path / folder_name
    assert (tmp_path / name).is_file() and leftovers(tmp_path) == []
    assert [r.method for r in cifar_server.requests] == ["GET"]
    raw = load_cifar10(tmp_path, fmt)
    assert raw.layout == fmt and raw.source == folder
    assert_same(raw, cifar_server.dataset)
    assert raw.class_names[0] == "airplane" and len(raw.class_names) == 10
    assert lines[-1] == f"CIFAR-10 is ready in {folder}"


def test_second_download_makes_no_request_and_force_fetches_again(cifar_server, tmp_path):
    download(cifar_server, tmp_path)
    cifar_server.reset()

    folder, lines = download(cifar_server, tmp_path)
    assert cifar_server.requests == []
    assert lines == [f"CIFAR-10 is ready in {folder}"]

    download(cifar_server, tmp_path, force=True)
    assert len(cifar_server.requests) == 1
    assert_same(load_cifar10(tmp_path), cifar_server.dataset)


def test_resumes_with_a_range_request_after_the_connection_breaks(cifar_server, tmp_path):
    cifar_server.cut_next_after(300_000)
    _, lines = download(cifar_server, tmp_path)

    first, second = cifar_server.requests
    assert first.range is None and first.status == 200
    offset = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 300_000 and second.status == 206
    assert f"resuming at byte {offset}" in lines
    assert_same(load_cifar10(tmp_path), cifar_server.dataset)


def test_resumes_a_part_file_left_by_an_earlier_run(cifar_server, tmp_path):
    archive = cifar_server.root / PY
    (tmp_path / (PY + ".part")).write_bytes(archive.read_bytes()[:100_000])
    download(cifar_server, tmp_path)

    (request,) = cifar_server.requests
    assert request.range == "bytes=100000-" and request.status == 206
    assert (tmp_path / PY).read_bytes() == archive.read_bytes()


def test_restarts_from_zero_when_the_server_ignores_range(cifar_server, tmp_path):
    (tmp_path / (PY + ".part")).write_bytes(b"x" * 5000)  # not even a real prefix
    cifar_server.ignore_range()
    _, lines = download(cifar_server, tmp_path)

    (request,) = cifar_server.requests
    assert request.range == "bytes=5000-" and request.status == 200
    assert any("restarting from zero" in line for line in lines)
    assert (tmp_path / PY).read_bytes() == (cifar_server.root / PY).read_bytes()


def test_retries_after_a_500_answer(cifar_server, tmp_path):
    cifar_server.fail_next(2, status=500)
    _, lines = download(cifar_server, tmp_path)

    assert [r.status for r in cifar_server.requests] == [500, 500, 200]
    assert sum("retrying" in line and "HTTP 500" in line for line in lines) == 2
    assert_same(load_cifar10(tmp_path), cifar_server.dataset)


def test_gives_up_after_the_retries_with_the_last_reason(cifar_server, tmp_path):
    cifar_server.fail_next(5, status=503)
    with pytest.raises(DownloadError, match="HTTP 503") as err:
        download(cifar_server, tmp_path, retries=1)
    assert len(cifar_server.requests) == 2
    assert cifar_server.url_for(PY) in str(err.value)


def test_404_is_not_retried(cifar_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(cifar_server, tmp_path, name="missing.tar.gz", md5=None)
    assert len(cifar_server.requests) == 1


def test_md5_mismatch_names_both_sums_and_leaves_no_file(cifar_server, tmp_path):
    wrong = "0" * 32
    with pytest.raises(DownloadError) as err:
        download(cifar_server, tmp_path, md5=wrong)

    message = str(err.value)
    assert wrong in message and cifar_server.md5[PY] in message
    assert "\n" not in message
    assert not (tmp_path / PY).exists() and not (tmp_path / (PY + ".part")).exists()
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_custom_url_without_md5_is_not_checked_and_says_so(cifar_server, tmp_path):
    lines = []
    download_cifar10(tmp_path, url=cifar_server.url_for(PY), log=lines.append, progress=False)
    assert any("will not be verified" in line for line in lines)
    assert_same(load_cifar10(tmp_path), cifar_server.dataset)


def test_bad_md5_option_is_a_config_error(cifar_server, tmp_path):
    with pytest.raises(ConfigError, match="32 hex digits"):
        download(cifar_server, tmp_path, md5="abc")
    assert cifar_server.requests == []


def test_no_network_is_one_line_naming_the_url_and_where_to_put_the_file(dead_url, tmp_path):
    with pytest.raises(DownloadError) as err:
        download_cifar10(tmp_path, url=dead_url, md5=None, progress=False, retries=1, backoff=0.01)

    message = str(err.value)
    assert "\n" not in message
    assert dead_url in message and "Connection refused" in message
    assert str(tmp_path / PY) in message and "--url" in message


def test_an_archive_put_there_by_hand_is_extracted_without_a_request(cifar_server, tmp_path):
    (tmp_path / PY).write_bytes((cifar_server.root / PY).read_bytes())
    download(cifar_server, tmp_path)
    assert cifar_server.requests == []
    assert_same(load_cifar10(tmp_path), cifar_server.dataset)


def test_an_archive_put_there_by_hand_with_the_wrong_md5_is_refused(cifar_server, tmp_path):
    (tmp_path / PY).write_bytes(b"not an archive")
    with pytest.raises(DataError, match="--force"):
        download(cifar_server, tmp_path)
    assert cifar_server.requests == []


# ---------------------------------------------------------------- unsafe archives

def evil_archive(path, kind, target):
    """A .tar.gz with one valid-looking batch folder plus one unsafe member of ``kind``."""
    members = {"cifar-10-batches-py/readme.html": b"hi"}
    with io.BytesIO() as buffer:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo({"dotdot": "cifar-10-batches-py/../../../x",
                                    "absolute": str(target),
                                    "symlink": "cifar-10-batches-py/link",
                                    "hardlink": "cifar-10-batches-py/hard",
                                    "device": "cifar-10-batches-py/dev"}[kind])
            if kind in ("dotdot", "absolute"):
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "device": tarfile.CHRTYPE}[kind]
                info.linkname = str(target)
                tar.addfile(info)
        path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path, kind):
    outside = tmp_path / "x"  # where the "../" member would land from data/.extract-*/
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = tmp_path / "evil.tar.gz"
    evil_archive(archive, kind, outside)

    with pytest.raises(DataError, match="refusing to extract") as err:
        safe_extract(archive, data_dir, "cifar-10-batches-py")
    assert "\n" not in str(err.value)
    assert not outside.exists() and not os.path.lexists(outside)
    assert list(data_dir.iterdir()) == []  # no folder, no temporary left


def test_download_refuses_an_unsafe_archive(cifar_server, tmp_path):
    evil_archive(cifar_server.root / "evil.tar.gz", "dotdot", None)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="'..'"):
        download(cifar_server, data_dir, name="evil.tar.gz", md5=None)
    assert not (tmp_path / "x").exists()
    # kept: the user can inspect it (beside it, the lock file that serializes downloads into data_dir)
    assert sorted(p.name for p in data_dir.iterdir() if p.suffix != ".lock") == [PY]


def test_an_archive_without_a_complete_layout_is_not_put_in_place(cifar_server, tmp_path):
    write_tar_gz(cifar_server.root / "partial.tar.gz", {"cifar-10-batches-py/data_batch_1": b"x"})
    with pytest.raises(DataError, match="incomplete: test_batch, batches.meta missing"):
        download(cifar_server, tmp_path, name="partial.tar.gz", md5=None)
    assert not (tmp_path / "cifar-10-batches-py").exists() and leftovers(tmp_path) == []


def test_a_corrupt_archive_is_a_one_line_data_error(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 10)
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        safe_extract(archive, tmp_path, "cifar-10-batches-py")
    assert "\n" not in str(err.value)


def test_fetch_writes_nothing_under_the_final_name_until_verified(cifar_server, tmp_path):
    dest = tmp_path / "file.tar.gz"
    fetch(cifar_server.url_for(PY), dest, cifar_server.md5[PY], progress=False)
    assert dest.read_bytes() == (cifar_server.root / PY).read_bytes()
    assert not (tmp_path / "file.tar.gz.part").exists()


# ---------------------------------------------------------------- data folder

def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CS_NETS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir("opt", "cfg") == (Path.cwd() / "opt")
    assert resolve_data_dir(None, str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.setenv("CS_NETS_DATA", "")
    assert resolve_data_dir() == tmp_path / "xdg" / "cs_nets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "cs_nets"


def test_progress_bar_stays_off_when_stderr_is_not_a_terminal(cifar_server, tmp_path, capsys):
    download(cifar_server, tmp_path, progress=True)  # pytest's captured stderr is no terminal
    assert capsys.readouterr().err == ""


def test_an_interrupted_extraction_leaves_no_dataset_that_looks_complete(cifar_server, tmp_path):
    data = (cifar_server.root / PY).read_bytes()
    (cifar_server.root / "cut.tar.gz").write_bytes(data[: len(data) * 2 // 3])  # dies mid-member
    with pytest.raises(DataError, match="truncated or corrupt.*--force"):
        download(cifar_server, tmp_path, name="cut.tar.gz", md5=None)
    assert not (tmp_path / "cifar-10-batches-py").exists() and leftovers(tmp_path) == []


def test_stale_temporaries_of_killed_extractions_are_cleaned_up(cifar_server, tmp_path):
    stale, fresh = tmp_path / ".extract-old", tmp_path / ".extract-busy"
    for folder in (stale, fresh):
        (folder / "cifar-10-batches-py").mkdir(parents=True)
    os.utime(stale, (0, 0))
    download(cifar_server, tmp_path)
    assert not stale.exists() and fresh.exists()  # a recent one may belong to another process
