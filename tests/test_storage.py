"""data.storage: uint8 training images, normalized as each minibatch is drawn, train the same bits as float32.

The reference twin of the uint8 path is the float32 path itself: the same config is
trained both ways and every parameter, metric and batch loss is compared with ==.
"""

import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from test_folder import write_folder

from cs_nets.config import load_config
from cs_nets.data.folder import cache_dir
from cs_nets.data.pipeline import prepare_dataset
from cs_nets.data.storage import ImageRows, NormalizedRows
from cs_nets.errors import ConfigError
from cs_nets.memory import LIMIT_VARIABLE, check_fits, choose_storage, estimate_bytes, memory_limit
from cs_nets.runs.checkpoint import load_checkpoint
from cs_nets.runs.task import build_model_for, resume, run
from cs_nets.training.trainer import fit

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
SMALL = ["data.synthetic_train=600", "data.synthetic_test=100", "data.num_val=100", "model.hidden_dims=[16]",
         "train.batch_size=64", "train.num_epochs=2", "train.train_eval_size=150"]


def train_both(overrides, data_dir=None):
    """{storage: (dataset, model, result)} of the same config trained with uint8 and float32 storage."""
    out = {}
    for storage in ("uint8", "float32"):
        config = load_config(SMOKE, [*overrides, f"data.storage={storage}"])
        data = prepare_dataset(config, data_dir, progress=False)
        model = build_model_for(config, data)
        initial = {name: p.copy() for name, p in model.params.items()}
        result = fit(model, data.X_train, data.y_train, data.X_val, data.y_val, config.optim, config.train,
                     seed=config.seed, progress=False)
        assert any(not np.array_equal(p, initial[name]) for name, p in model.params.items())  # it trained
        out[storage] = (data, model, result)
    return out


def assert_same_training(both):
    (d8, m8, r8), (d32, m32, r32) = both["uint8"], both["float32"]
    assert isinstance(d8.X_train, NormalizedRows) and isinstance(d32.X_train, np.ndarray)
    assert d8.storage == "uint8" and d32.storage == d32.X_train.dtype.name
    np.testing.assert_array_equal(d8.X_train[:], d32.X_train)  # every input the trainer can draw
    np.testing.assert_array_equal(d8.X_val, d32.X_val)
    np.testing.assert_array_equal(d8.test_rows, d32.test_rows)
    assert d8.inputs.data_fingerprint == d32.inputs.data_fingerprint  # storage does not change the data's id
    for name in m32.params:
        np.testing.assert_array_equal(m8.params[name], m32.params[name])
    np.testing.assert_array_equal(r8.batch_losses, r32.batch_losses)
    no_time = [{k: v for k, v in h.items() if k != "seconds"} for h in r8.history]
    assert no_time == [{k: v for k, v in h.items() if k != "seconds"} for h in r32.history]
    assert (r8.best_epoch, r8.status) == (r32.best_epoch, r32.status)


@pytest.mark.parametrize("overrides", [
    ["data.normalize=mean_std", "train.hflip=true", "data.shuffle=true"],
    ["data.normalize=mean", "model.type=linear"],
    ["data.normalize=none", "optim.learning_rate=1e-6", "data.num_train=300"],  # a small split of the set
    ["data.normalize=mean_std", "data.dtype=float64", "model.type=fc_net", "model.hidden_dims=[8,8]"],
    ["data.normalize=mean_std", "data.hflip_copies=true", "data.shuffle=true"],  # mirrors: uint8 rows too
])
def test_uint8_storage_trains_the_same_bits_as_float32(overrides):
    both = train_both([*SMALL, *overrides])
    assert_same_training(both)


def test_a_folder_with_uint8_storage_maps_its_cache_and_trains_the_same_bits(tmp_path):
    write_folder(tmp_path / "pets", per_class=40)
    sets = ["data.source=folder", f"data.path={tmp_path / 'pets'}", "data.test_fraction=0.25", "data.num_val=12",
            "data.normalize=mean_std", "train.hflip=true", "train.batch_size=16", "train.num_epochs=2",
            "model.hidden_dims=[8]"]
    both = train_both(sets)
    assert_same_training(both)
    rows = both["uint8"][0].X_train.rows
    assert isinstance(rows.images, np.memmap) and not rows.images.flags.owndata and not rows.images.flags.writeable
    assert Path(rows.images.filename).parent == cache_dir(tmp_path / "pets")  # the decoded-image cache itself
    assert rows.images.shape == (120, 3072) and rows.shape == (90 - 12, 3072)  # all files; the training rows
    assert not isinstance(both["uint8"][0].test_rows, np.memmap)  # the test split is read, as with float32


def test_take_fills_the_given_buffer_and_allocates_nothing_after_the_first_batch():
    config = load_config(SMOKE, [*SMALL, "data.storage=uint8", "data.normalize=mean_std"])
    X = prepare_dataset(config, progress=False).X_train
    reference = X[:]  # the float array it stands for
    out = np.empty((256, 3072), np.float32)
    rng = np.random.default_rng(0)
    X.take(rng.permutation(len(X))[:256], axis=0, out=out)  # the first batch sets up the buffers
    tracemalloc.start()
    peaks = []
    for _ in range(10):
        idx = rng.permutation(len(X))[:256]
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        assert X.take(idx, axis=0, out=out) is out
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        np.testing.assert_array_equal(out, reference[idx])
    tracemalloc.stop()
    # A copy of the batch would be 786,432 bytes (uint8) or 4 times that; what is traced is a few Python
    # objects and NumPy's fixed scratch of a ufunc call (about 25 KB, whatever the batch size).
    assert max(peaks) < 64 * 1024
    X.take(idx[:10], axis=0, out=out[:10])  # a shorter last batch uses the same buffers
    np.testing.assert_array_equal(out[:10], reference[idx[:10]])
    again = pickle.loads(pickle.dumps(X))  # what a sweep ships to its trials
    np.testing.assert_array_equal(again[idx], reference[idx])


def test_image_rows_pick_rows_without_copying():
    images = np.arange(5 * 4, dtype=np.uint8).reshape(5, 4)
    rows = ImageRows(images, [4, 0, 2])
    assert rows.shape == (3, 4) and len(rows) == 3 and rows.subset([2, 0]).images is images
    np.testing.assert_array_equal(rows[:], images[[4, 0, 2]])
    np.testing.assert_array_equal(rows.subset([2, 0])[[1]], images[[4]])
    with pytest.raises(ValueError, match="uint8"):
        ImageRows(images.astype(np.float32))


# ------------------------------------------------------------------------- auto, and the memory estimate


def test_auto_chooses_uint8_only_when_the_float_inputs_do_not_fit(monkeypatch):
    config = load_config(SMOKE)
    as_floats = sum(estimate_bytes(config, storage="float32").values())
    as_bytes = sum(estimate_bytes(config, storage="uint8").values())
    pixels = (1200 - 200) * 3072
    assert as_floats - as_bytes == pixels * 4 - 1000 * 8 - 100 * 3072  # the float inputs; the index, a batch
    assert choose_storage(config, available=as_floats) == "float32"
    assert choose_storage(config, available=as_floats - 1) == "uint8"
    assert check_fits(config, available=as_floats - 1) == as_bytes  # the estimate of the storage chosen
    with pytest.raises(ConfigError, match="the run needs about"):
        check_fits(config, available=as_bytes - 1)  # neither fits
    features = load_config(ROOT / "configs" / "two_layer_features.yaml")
    assert choose_storage(features, available=1) == "float32"  # storage does not apply to features
    assert choose_storage(load_config(SMOKE, ["data.storage=uint8"]), available=1 << 50) == "uint8"
    monkeypatch.setenv(LIMIT_VARIABLE, str(as_floats - 1))
    assert memory_limit() == as_floats - 1 and choose_storage(config) == "uint8"
    monkeypatch.setenv(LIMIT_VARIABLE, "2G")
    assert memory_limit() == 2 << 30 and choose_storage(config) == "float32"


def test_the_estimate_of_a_folder_counts_its_files_and_not_its_mapped_pixels(tmp_path):
    write_folder(tmp_path / "pets", per_class=40)
    sets = ["data.source=folder", f"data.path={tmp_path / 'pets'}", "data.test_fraction=0.25", "data.num_val=12"]
    floats = estimate_bytes(load_config(None, [*sets, "data.storage=float32"]))
    mapped = estimate_bytes(load_config(None, [*sets, "data.storage=uint8"]))
    labels = 120 * 8
    assert floats["images"] == 120 * 3072 + labels  # 90 training + 30 test files, uint8 while loading
    assert floats["inputs"] == (78 + 12) * 3072 * 4 + 78 * 3072 * 4  # train + val, and the train_eval rows
    assert mapped["images"] == (30 + 12) * 3072 + labels + 78 * 8  # test and val rows read; the index
    assert mapped["inputs"] == 12 * 3072 * 4 + 78 * 3072 * 4
    other = estimate_bytes(load_config(None, [*sets, f"data.path={tmp_path / 'none'}", "data.storage=float32"]))
    assert other["images"] == (50_000 + 10_000) * 3072 + 60_000 * 8  # cannot be listed: CIFAR-10's sizes


# ------------------------------------------------------------------------- the command line


def csnets(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cs_nets", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("sets, env, message", [
    (["data.storage=uint16"], {}, "data.storage: expected one of auto, float32, uint8, got 'uint16'"),
    (["data.storage=uint8", "data.source=circles"], {}, "data.source circles gives 2-D points"),
    (["data.storage=uint8", "features=[{type: hog}]"], {}, "this model reads features (hog)"),
    ([], {LIMIT_VARIABLE: "lots"}, "CS_NETS_MEMORY_LIMIT: expected a number of bytes"),
])
def test_bad_storage_settings_are_one_line_config_errors(tmp_path, sets, env, message):
    proc = csnets("train", "--config", SMOKE, *[a for s in sets for a in ("--set", s)], "--out", tmp_path / "r",
                  env=env)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_csnets_train_with_auto_under_a_memory_limit_stores_uint8_and_gives_the_same_run(tmp_path):
    write_folder(tmp_path / "pets", per_class=40)
    sets = ["data.source=folder", f"data.path={tmp_path / 'pets'}", "data.test_fraction=0.25", "data.num_val=12",
            "data.normalize=mean_std", "train.hflip=true", "train.batch_size=16", "train.num_epochs=3"]
    config = load_config(SMOKE, sets)
    limit = sum(estimate_bytes(config, storage="float32").values()) - 1  # float32 inputs do not fit; uint8 do
    runs = {}
    for name, extra, env in [("auto", [], {LIMIT_VARIABLE: str(limit)}), ("float32", ["data.storage=float32"], {})]:
        proc = csnets("train", "--config", SMOKE, *[a for s in [*sets, *extra] for a in ("--set", s)],
                      "--out", tmp_path / name, env=env)
        assert proc.returncode == 0, proc.stderr
        runs[name] = proc.stderr
    assert "training images held as uint8" in runs["auto"] and "held as" not in runs["float32"]
    assert_same_run_dirs(tmp_path / "auto", tmp_path / "float32")


def assert_same_run_dirs(a: Path, b: Path):
    """Same parameters, input statistics, metrics (but the times), batch losses and scores."""
    (ma, ia, meta_a), (mb, ib, meta_b) = load_checkpoint(a), load_checkpoint(b)
    for name in mb.params:
        np.testing.assert_array_equal(ma.params[name], mb.params[name])
    for name, value in ib.state().items():
        np.testing.assert_array_equal(ia.state()[name], value)
    assert ia.data_fingerprint == ib.data_fingerprint and meta_a["class_names"] == meta_b["class_names"]
    np.testing.assert_array_equal(np.load(a / "batch_losses.npy"), np.load(b / "batch_losses.npy"))

    def metrics(path):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (path / "metrics.jsonl").read_text().splitlines()]

    assert metrics(a) == metrics(b)
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    for key in ("test_accuracy", "val_accuracy", "train_accuracy", "test_confusion", "best_epoch", "status",
                "data_fingerprint"):
        assert sa[key] == sb[key], key


def test_runs_resume_across_storages_to_the_float32_runs_bits(tmp_path, monkeypatch):
    """Interrupted after the first epoch (state.npz saved) and resumed: resume and checkpoints work
    unchanged, and an auto run that resumes where its float inputs no longer fit goes on with uint8."""
    sets = [*SMALL, "train.num_epochs=3", "train.hflip=true"]

    def stop(metrics):
        if metrics["epoch"] == 1:
            raise KeyboardInterrupt

    assert run(load_config(SMOKE, [*sets, "data.storage=uint8"]), tmp_path / "u8", on_epoch=stop).status == \
        "interrupted"
    assert resume(tmp_path / "u8").status == "completed"
    auto = load_config(SMOKE, sets)
    assert choose_storage(auto) == "float32"
    assert run(auto, tmp_path / "switch", on_epoch=stop).status == "interrupted"
    monkeypatch.setenv(LIMIT_VARIABLE, str(sum(estimate_bytes(auto, storage="float32").values()) - 1))
    assert choose_storage(auto) == "uint8"
    assert resume(tmp_path / "switch").status == "completed"
    monkeypatch.delenv(LIMIT_VARIABLE)
    assert run(load_config(SMOKE, [*sets, "data.storage=float32"]), tmp_path / "f32").status == "completed"
    assert_same_run_dirs(tmp_path / "u8", tmp_path / "f32")
    assert_same_run_dirs(tmp_path / "switch", tmp_path / "f32")
