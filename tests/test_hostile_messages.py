"""Damaged run files and data folders, odd config values and a deleted working directory: each is one line
that names the problem (never NumPy's "allow_pickle" advice, never "try a smaller learning rate" for a
damaged file, never a download for a lost file), and nothing outside the run's folder changes."""

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from archive_writer import write_archive
from hostile import ROOT, SMOKE, Outcome, changed_outside, fast_first, invoke, one_line, snapshot, untouched

from cs_nets.data.synthetic import make_synthetic

TRAIN = ["train", "--config", SMOKE, "--set", "train.num_epochs=2"]
CIFAR = ["--set", "data.source=cifar10", "--set", "data.num_val=50"]


# ------------------------------------------------------------------ state.npz


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped after epoch 1 of 2 (state.npz kept)."""
    from cs_nets.config import load_config
    from cs_nets.runs.task import run

    out = tmp_path_factory.mktemp("int") / "r"

    def stop(metrics):
        raise KeyboardInterrupt

    result = run(load_config(SMOKE, ["train.num_epochs=2", "optim.schedule=cosine"]), out, on_epoch=stop)
    assert result.status == "interrupted" and (out / "state.npz").is_file()
    return out


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def state_arrays(run):
    with np.load(run / "state.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def with_value(key, value):
    def change(arrays):
        target = arrays[key].copy()
        target.flat[0] = value
        arrays[key] = target
        return npz_bytes(arrays)
    return change


def pickled_member(arrays):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.save(member, value if key != "params/W1" else np.array([{"x": 1}], dtype=object), allow_pickle=True)
            zf.writestr(f"{key}.npy", member.getvalue())
    return buffer.getvalue()


STATES = {
    # what replaces state.npz -> pattern of the one error line
    "garbage": (lambda a: b"garbage" * 100, r"r/state.npz is not a cs_nets training state \(ValueError: not an .npz"),
    "empty": (lambda a: b"", r"not a cs_nets training state"),
    "a pickle": (lambda a: b"\x80\x04\x95" + b"x" * 50, r"not a cs_nets training state"),
    "a .npy, not an .npz": (lambda a: b"\x93NUMPY" + b"x" * 100, r"not an .npz archive"),
    "a zip of something else": (lambda a: npz_bytes({"x": np.zeros(3)}), r"not a cs_nets training state"),
    "an object array inside": (pickled_member, r"not a cs_nets training state \(ValueError: it holds pickled "
                                               r"\(object\) data, which is never loaded\)"),
    "NaN weights": (with_value("params/W1", np.nan), r"r/state.npz is corrupt: params/W1 holds values that are "
                                                      r"not finite \(NaN or infinity\); start the run again"),
    "infinite bias": (with_value("params/b2", np.inf), r"is corrupt: params/b2 holds values that are not finite"),
    "NaN best weights": (with_value("best/W2", np.nan), r"is corrupt: best/W2 holds values"),
    "NaN momentum buffer": (lambda a: with_value(next(k for k in a if k.startswith("rule/")), np.nan)(a),
                            r"is corrupt: rule/\w+/\w+ holds values"),
}


@pytest.mark.parametrize("make,pattern", STATES.values(), ids=STATES.keys())
def test_a_damaged_state_is_named(tmp_path, interrupted, make, pattern):
    shutil.copytree(interrupted, tmp_path / "r")
    (tmp_path / "r" / "state.npz").write_bytes(make(state_arrays(interrupted)))
    outcome = invoke(tmp_path, ["train", "--resume", "r", "--quiet"], own=(".r.lock",))
    line = one_line(outcome, 1, pattern)
    assert "allow_pickle" not in line and "unsafely" not in line and "learning rate" not in line
    untouched(outcome)


SYMLINKS = {
    "to a text file": ("passwd", "root:x:0:0\n", r"not an .npz archive"),
    "to a folder": ("folder", None, r"training state r/state.npz is a directory, not a regular file: refused"),
    "dangling": ("nowhere", "MISSING", r"cannot read training state r/state.npz: No such file"),
}


@pytest.mark.parametrize("name,content,pattern", SYMLINKS.values(), ids=SYMLINKS.keys())
def test_a_symlinked_state_is_named(tmp_path, interrupted, name, content, pattern):
    shutil.copytree(interrupted, tmp_path / "r")
    target = tmp_path / name
    if content is None:
        target.mkdir()
    elif content != "MISSING":
        target.write_text(content)
    (tmp_path / "r" / "state.npz").unlink()
    (tmp_path / "r" / "state.npz").symlink_to(target)
    outcome = invoke(tmp_path, ["train", "--resume", "r", "--quiet"], own=(".r.lock",))
    line = one_line(outcome, 1, pattern)
    assert "allow_pickle" not in line
    untouched(outcome)


def test_resume_of_a_diverged_run_says_so(tmp_path):
    outcome = invoke(tmp_path, [*TRAIN, "--set", "optim.learning_rate=1e6", "--out", "d", "--quiet"],
                     own=("d", ".d.lock"))
    one_line(outcome, 1, r"the loss became nan in epoch 1; try a smaller learning rate")
    outcome = invoke(tmp_path, ["train", "--resume", "d", "--quiet"], own=(".d.lock",))
    one_line(outcome, 1, r"^error: d diverged \(see its summary.json\); resuming cannot help: start it again "
                         r"with other settings, e.g. a smaller optim.learning_rate; the best parameters so far "
                         r"are in d$")
    untouched(outcome)


# ------------------------------------------------------------------ data folders


def extracted(root: Path, fmt: str, batches: int = 5, num_train: int = 250) -> Path:
    """root/data with the extracted `fmt` layout of a small synthetic CIFAR-10; returns its layout folder."""
    data = make_synthetic(num_train=num_train, num_test=50, seed=5)
    archive, _ = write_archive(root, data.X_train, data.y_train, data.X_test, data.y_test, fmt=fmt, batches=batches)
    with tarfile.open(archive) as tar:
        tar.extractall(root / "data", filter="data")
    archive.unlink()
    return root / "data" / ("cifar-10-batches-py" if fmt == "python" else "cifar-10-batches-bin")


def remove(name):
    return lambda folder: (folder / name).unlink()


def empty_python_batch(name):
    def change(folder):
        from archive_writer import python_batch_bytes

        (folder / name).write_bytes(python_batch_bytes(np.zeros((0, 3072), np.uint8), np.zeros(0, np.int64),
                                                       "training batch 1 of 5", []))
    return change


DATA = {
    "python: batches.meta lost": ("python", remove("batches.meta"), r"cifar-10-batches-py is incomplete: batches.meta "
                                  r"missing: put the file back, or run `csnets download --force`"),
    "python: test_batch lost": ("python", remove("test_batch"), r"incomplete: test_batch missing: put the file back"),
    "python: data_batch_5 lost": ("python", remove("data_batch_5"), r"incomplete: data_batch_5 missing \(its "
                                                                    r"training batches say there are 5\)"),
    "python: data_batch_3 lost": ("python", remove("data_batch_3"), r"incomplete: data_batch_3 missing"),
    "python: every training batch lost": ("python", lambda f: [p.unlink() for p in f.glob("data_batch_*")],
                                          r"incomplete: data_batch_<k> missing"),
    "binary: batches.meta.txt lost": ("binary", remove("batches.meta.txt"), r"incomplete: batches.meta.txt missing"),
    "binary: test_batch.bin lost": ("binary", remove("test_batch.bin"), r"incomplete: test_batch.bin missing"),
    "binary: data_batch_2.bin lost": ("binary", remove("data_batch_2.bin"), r"incomplete: data_batch_2.bin missing"),
    "python: a batch of 0 images": ("python", empty_python_batch("data_batch_1"),
                                    r"data_batch_1 holds no images: a CIFAR-10 batch holds at least one"),
    "python: a test batch of 0 images": ("python", empty_python_batch("test_batch"), r"test_batch holds no images"),
    "binary: a batch of 0 bytes": ("binary", lambda f: (f / "data_batch_4.bin").write_bytes(b""),
                                   r"data_batch_4.bin holds no images \(0 bytes\)"),
}


@pytest.mark.parametrize("fmt,damage,pattern", DATA.values(), ids=DATA.keys())
def test_a_damaged_data_folder_is_named_not_downloaded(tmp_path, fmt, damage, pattern):
    folder = extracted(tmp_path, fmt)
    damage(folder)
    outcome = invoke(tmp_path, [*TRAIN, *CIFAR, "--set", f"data.format={fmt}", "--data-dir", "data", "--out", "r",
                                "--quiet"])
    line = one_line(outcome, 1, pattern)
    assert "download failed" not in line and "Traceback" not in line
    untouched(outcome)  # no download, no lock, no run folder


@pytest.mark.parametrize("fmt", fast_first(["binary", "python"]))
def test_a_mirror_with_fewer_batches_is_fine(tmp_path, fmt):
    """A mirror whose layout says it has 2 training batches trains on both."""
    extracted(tmp_path, fmt, batches=2)
    outcome = invoke(tmp_path, [*TRAIN, *CIFAR, "--set", f"data.format={fmt}", "--data-dir", "data", "--out", "r"],
                     own=("r", ".r.lock", "data/features"))
    assert outcome.code == 0, outcome.out
    assert "data: 200 train, 50 val, 50 test" in outcome.out
    untouched(outcome)


# ------------------------------------------------------------------ feature caches


@pytest.mark.parametrize("poison", fast_first([np.nan, np.inf, -np.inf], ["nan", "inf", "-inf"]))
def test_a_feature_cache_of_nan_is_rebuilt(tmp_path, poison):
    extracted(tmp_path, "python")
    args = [*TRAIN, *CIFAR, "--set", "features=[{type: color_hist}]", "--data-dir", "data"]
    clean = invoke(tmp_path, [*args, "--out", "clean"], own=("clean", ".clean.lock", "data/features"))
    assert clean.code == 0, clean.out
    caches = sorted((tmp_path / "data" / "features").glob("features-*.npy"))
    assert len(caches) == 3
    for path in caches:
        values = np.load(path)
        values[len(values) // 2] = poison
        np.save(path, values)
    outcome = invoke(tmp_path, [*args, "--out", "r"], own=("r", ".r.lock", "data/features"))
    assert outcome.code == 0, outcome.out
    assert outcome.out.count("holds values that are not finite (NaN or infinity)); recomputing it") == 3
    assert outcome.out.splitlines()[-1] == clean.out.splitlines()[-1]  # the same test accuracy
    assert all(np.isfinite(np.load(p)).all() for p in caches)


# ------------------------------------------------------------------ config values and the working directory

VALUES = {
    "noise 1e308": ("toy_spiral", "data.noise=1e308", r"data.noise: expected a value <= 1000.0, got 1e\+308"),
    "noise inf": ("toy_spiral", "data.noise=.inf", r"data.noise"),
    "noise nan": ("toy_spiral", "data.noise=.nan", r"data.noise"),
    "noise negative": ("toy_spiral", "data.noise=-1", r"data.noise: expected a value >= 0"),
}


@pytest.mark.parametrize("config,override,pattern", VALUES.values(), ids=VALUES.keys())
def test_config_values(tmp_path, config, override, pattern):
    outcome = invoke(tmp_path, ["train", "--config", ROOT / "configs" / f"{config}.yaml", "--set", override,
                                "--out", "r"])
    one_line(outcome, 2, pattern)
    untouched(outcome)


@pytest.mark.parametrize("command", fast_first([["train", "--config", str(SMOKE)], ["config"],
                                                ["train", "--config", "smoke.yaml"]]))
def test_a_deleted_working_directory(tmp_path, command):
    gone = tmp_path / "gone"
    gone.mkdir()
    before = snapshot(tmp_path)
    code = ("import os, subprocess, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "sys.exit(subprocess.run([sys.executable, '-m', 'cs_nets', *sys.argv[2:]]).returncode)")
    proc = subprocess.run([sys.executable, "-c", code, str(gone), *command], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    outcome = Outcome(proc.returncode, proc.stdout + proc.stderr, changed_outside(before, snapshot(tmp_path),
                                                                                  own=("gone",)))
    assert proc.stdout == ""
    one_line(outcome, 2, r"^error: the current working directory no longer exists \(deleted\?\): cd to an existing "
                         r"folder$")
    untouched(outcome)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
