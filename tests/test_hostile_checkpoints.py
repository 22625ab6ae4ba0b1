"""Checkpoints are untrusted input: crafted model.npz files against load_checkpoint and `csnets evaluate`."""

import json
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hostile import invoke, one_line, untouched

from cs_nets.cli import main
from cs_nets.data.cifar10 import data_fingerprint
from cs_nets.data.synthetic import make_synthetic
from cs_nets.errors import DataError
from cs_nets.evaluation.evaluate import evaluate_checkpoint
from cs_nets.runs.checkpoint import MAX_MEMBERS, MAX_META_CHARS, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(world, *args, code=1):
    """`csnets ARGS` with `world` as working directory (hostile.invoke): exit `code`, the output one line
    `error: ...` (returned), and nothing in `world`, its home or data folder changed."""
    outcome = invoke(world, args)
    line = one_line(outcome, code, "")
    untouched(outcome)
    return line


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A finished run on synthetic data: (run dir, its summary)."""
    out = tmp_path_factory.mktemp("ckpt") / "smoke"
    result = run("train", "--config", SMOKE, "--set", "train.num_epochs=1", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "summary.json").read_text())


def arrays_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def crafted(src, dest, mutate=None, meta_text=None, **replace):
    """Copy the checkpoint `src` to `dest` (a model.npz) with its meta changed by `mutate(meta)` or
    replaced by `meta_text`, and arrays replaced by keyword (params_W1=...)."""
    arrays = arrays_of(src)
    meta = json.loads(str(arrays["meta"]))
    if mutate is not None:
        mutate(meta)
    arrays["meta"] = np.array(meta_text if meta_text is not None else json.dumps(meta))
    for key, value in replace.items():
        name = key.replace("_", "/", 1)
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dest, **arrays)
    return dest


def test_a_checkpoint_round_trips_and_records_the_data_fingerprint(smoke_run):
    out, _ = smoke_run
    model, inputs, meta = load_checkpoint(out)
    saved = arrays_of(out / "model.npz")
    assert all(np.array_equal(model.params[k], saved[f"params/{k}"]) for k in model.params)
    # Reference: the fingerprint of the synthetic data the smoke config describes.
    expected = data_fingerprint(make_synthetic(1200, 300, seed=0))
    assert meta["data_fingerprint"] == inputs.data_fingerprint == expected


def test_url_and_folder_stored_in_a_checkpoint_are_never_used(cifar_server, tmp_path):
    name = "cifar-10-python.tar.gz"
    good, md5 = cifar_server.url_for(name), cifar_server.md5[name]
    (cifar_server.root / "evil").mkdir()
    shutil.copy(cifar_server.root / name, cifar_server.root / "evil" / name)
    config = tmp_path / "linear.yaml"
    config.write_text(f"data: {{url: '{good}', md5: {md5}, num_val: 50}}\nmodel: {{type: linear}}\n"
                      f"train: {{batch_size: 50, num_epochs: 1}}\n")
    data_dir, out = tmp_path / "data", tmp_path / "run"
    assert run("train", "--config", config, "--data-dir", data_dir, "--out", out, "--quiet").exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    evil_dir = tmp_path / "evil"

    def evil(meta):
        meta["config"]["data"].update(url=cifar_server.url_for(f"evil/{name}"), md5=None, dir=str(evil_dir))

    ckpt = crafted(out / "model.npz", tmp_path / "crafted" / "model.npz", evil)
    cifar_server.reset()
    result = run("evaluate", "--checkpoint", ckpt, "--data-dir", data_dir, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == summary["test_accuracy"]
    assert cifar_server.requests == [] and not evil_dir.exists()
    # Data missing: it comes from the user's --url and --md5, never from the checkpoint's.
    fresh = tmp_path / "fresh"
    result = run("evaluate", "--checkpoint", ckpt, "--data-dir", fresh, "--url", good, "--md5", md5, "--json")
    assert result.exit_code == 0, result.output
    assert [r.path for r in cifar_server.requests] == [f"/{name}"] and not evil_dir.exists()
    assert json.loads(result.stdout)["same_data"] is True


def test_evaluate_on_other_data_is_refused_unless_allowed(cifar_server, tmp_path):
    name = "cifar-10-python.tar.gz"
    url, md5 = cifar_server.url_for(name), cifar_server.md5[name]
    config = tmp_path / "linear.yaml"
    config.write_text(f"data: {{url: '{url}', md5: {md5}, num_val: 50}}\nmodel: {{type: linear}}\n"
                      f"train: {{batch_size: 50, num_epochs: 1}}\n")
    out = tmp_path / "run"
    assert run("train", "--config", config, "--data-dir", tmp_path / "a", "--out", out, "--quiet").exit_code == 0
    from archive_writer import write_archive

    other = make_synthetic(300, 100, seed=99)
    path, other_md5 = write_archive(cifar_server.root / "other", other.X_train, other.y_train,
                                    other.X_test, other.y_test)
    other_url = cifar_server.url_for(f"other/{path.name}")
    assert run("download", "--data-dir", tmp_path / "b", "--url", other_url, "--md5", other_md5).exit_code == 0
    message = refused(tmp_path, "evaluate", "--checkpoint", out, "--data-dir", tmp_path / "b", "--quiet")
    assert f"{tmp_path / 'b'} is not the data {out / 'model.npz'} was trained on" in message
    assert data_fingerprint(other) in message and "--allow-other-data" in message
    result = run("evaluate", "--checkpoint", out, "--data-dir", tmp_path / "b", "--allow-other-data", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["same_data"] is False and report["data_fingerprint"] == data_fingerprint(other)
    assert report["num_images"] == 100


def test_a_model_that_does_not_match_its_config_yaml_is_detected(smoke_run, tmp_path):
    out, _ = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    text = (copy / "config.yaml").read_text()
    (copy / "config.yaml").write_text(text.replace("hidden_dims: [32]", "hidden_dims: [64]"))
    message = refused(tmp_path, "evaluate", "--checkpoint", copy)
    assert "does not match" in message and "model.hidden_dims is [32] in the checkpoint but [64] in config.yaml" in message
    (copy / "config.yaml").write_text("model: {type: nope}\n")
    assert "is not a valid config" in refused(tmp_path, "evaluate", "--checkpoint", copy / "model.npz")
    (copy / "config.yaml").write_text(text)
    assert run("evaluate", "--checkpoint", copy).exit_code == 0


def test_a_checkpoint_without_fingerprint_is_evaluated_with_a_note(smoke_run, tmp_path):
    out, summary = smoke_run
    ckpt = crafted(out / "model.npz", tmp_path / "old" / "model.npz", lambda m: m.pop("data_fingerprint"))
    notes = []
    report = evaluate_checkpoint(ckpt, log=notes.append)
    assert report["same_data"] is None and report["accuracy"] == summary["test_accuracy"]
    assert any("records no data fingerprint" in n for n in notes)


def test_empty_and_non_zip_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "model.npz"
    empty.write_bytes(b"")
    assert "is not a cs_nets checkpoint (not a zip file)" in refused(tmp_path, "evaluate", "--checkpoint", empty)
    empty.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert "is not a cs_nets checkpoint" in refused(tmp_path, "evaluate", "--checkpoint", empty)
    (tmp_path / "dir").mkdir()
    assert "no checkpoint at" in refused(tmp_path, "evaluate", "--checkpoint", tmp_path / "dir")


def _set(path, value):
    def mutate(meta):
        *parents, last = path
        target = meta
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return mutate


@pytest.mark.parametrize("path,value,expected", [
    (("model_type",), KeyError, "meta model_type is None, expected one of linear, two_layer, fc_net"),
    (("format",), 2, "meta format is 2"),
    (("input_dim",), "3072", "meta input_dim is '3072', expected an integer"),
    (("input_dim",), True, "meta input_dim is True"),
    (("num_classes",), 1, "meta num_classes is 1"),
    (("dtype",), "float16", "meta dtype is 'float16'"),
    (("hyperparams",), [], "meta hyperparams is [], expected an object"),
    (("hyperparams", "hidden_dim"), 0, "hidden_dim 0 is not an integer from 1 to 65536"),
    (("hyperparams", "activation"), "swish", "its architecture is not valid (activation: expected one of"),
    (("hyperparams", "hidden_dims"), [4], "hyperparameter 'hidden_dims' does not belong to two_layer"),
    (("hyperparams", "maxout_pieces"), "2", "maxout_pieces '2' is not an integer from 1 to 1024"),
    (("hyperparams", "maxout_pieces"), 10**9, "maxout_pieces 1000000000 is not an integer from 1 to 1024"),
    (("class_names",), ["a"], "meta class_names is ['a'], expected a list of 10 names"),
    (("data_fingerprint",), "zz", "meta data_fingerprint is 'zz', expected 32 hex digits"),
    (("inputs",), KeyError, "meta inputs is None"),
    (("inputs", "normalizer", "mode"), "whiten", "meta normalizer"),
    (("inputs", "features"), [{"type": "sift"}], "meta inputs: features[0].type"),
    (("config", "model", "type"), "cnn", "its run config is not valid"),
    (("config",), "x", "its run config is not valid"),
])
def test_malformed_meta_fields_are_named(smoke_run, tmp_path, path, value, expected):
    out, _ = smoke_run
    ckpt = crafted(out / "model.npz", tmp_path / "model.npz", _set(path, value))
    with pytest.raises(DataError) as err:
        load_checkpoint(ckpt)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert expected in refused(tmp_path, "evaluate", "--checkpoint", ckpt)


@pytest.mark.parametrize("meta_text,expected", [
    ("[" * 100_000 + "]" * 100_000, "meta nests 100000 levels deep, more than the 64 allowed"),
    ('{"a": ' * 70 + "1" + "}" * 70, "meta nests 70 levels deep"),
    ("{not json", "meta is not valid JSON"),
    ("[1, 2]", "meta is a JSON list, not an object"),
    ("1" * 5000, "meta is not valid JSON"),
])
def test_meta_that_is_not_a_small_json_object(smoke_run, tmp_path, meta_text, expected):
    out, _ = smoke_run
    ckpt = crafted(out / "model.npz", tmp_path / "model.npz", meta_text=meta_text)
    assert expected in refused(tmp_path, "evaluate", "--checkpoint", ckpt)


def test_a_huge_meta_is_refused_by_its_header(smoke_run, tmp_path):
    out, _ = smoke_run
    ckpt = crafted(out / "model.npz", tmp_path / "model.npz", meta_text=json.dumps({"x": "y" * MAX_META_CHARS}))
    assert "more than the 1.0 MiB allowed" in refused(tmp_path, "evaluate", "--checkpoint", ckpt)


@pytest.mark.parametrize("mutate,expected", [
    (_set(("hyperparams", "hidden_dim"), 10**9), "hidden_dim 1000000000 is not an integer from 1 to 65536"),
    (_set(("input_dim",), 10**9), "meta input_dim is 1000000000, expected an integer from 1 to 1048576"),
    (lambda m: m.update(model_type="fc_net", hyperparams={"hidden_dims": [10**9]}),
     "hidden_dims [1000000000] is not a list of at most 16 integers"),
    (lambda m: m.update(model_type="fc_net", hyperparams={"hidden_dims": [65536, 65536]}),
     "the architecture needs 16.8 GiB of parameters, more than 1.0 GiB: refused"),
])
def test_huge_architectures_are_refused_before_building(smoke_run, tmp_path, mutate, expected):
    out, _ = smoke_run
    ckpt = crafted(out / "model.npz", tmp_path / "model.npz", mutate)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            load_checkpoint(ckpt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert expected in str(err.value)
    assert peak < 16 << 20  # before: MemoryError tracebacks after trying to allocate terabytes
    assert expected in refused(tmp_path, "evaluate", "--checkpoint", ckpt)


@pytest.mark.parametrize("key,value,expected", [
    ("params_W1", np.zeros((32, 3072), np.float32), "params/W1 has shape (32, 3072), the architecture needs (3072, 32)"),
    ("params_W1", np.zeros((3072, 32), np.float64), "params/W1: dtype float64 is not accepted (expected float32)"),
    ("params_W1", np.array([None] * 3, dtype=object), "params/W1: dtype object is not accepted"),
    ("params_b2", None, "parameters ['W1', 'W2', 'b1'], the two_layer needs ['W1', 'W2', 'b1', 'b2']"),
    ("params_W3", np.zeros(3, np.float32), "parameters ['W1', 'W2', 'W3', 'b1', 'b2']"),
    ("inputs_mean", np.zeros(5, np.float32), "inputs/mean has shape (5,), the architecture needs (3072,)"),
    ("inputs_extra", np.zeros(3072, np.float32), "unexpected member inputs/extra"),
])
def test_arrays_that_do_not_fit_the_architecture(smoke_run, tmp_path, key, value, expected):
    out, _ = smoke_run
    path = tmp_path / "model.npz"
    if value is not None and value.dtype == object:  # np.savez refuses to write it without pickle
        arrays = arrays_of(out / "model.npz")
        with zipfile.ZipFile(path, "w") as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, value if name == "params/W1" else array, allow_pickle=True)
    else:
        crafted(out / "model.npz", path, **{key: value})
    assert expected in refused(tmp_path, "evaluate", "--checkpoint", path)


def _bomb(src, path, nbytes):
    """`src` with params/W1 replaced by a deflated member of `nbytes` zero bytes (a zip bomb)."""
    arrays = arrays_of(src)
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            if name != "params/W1":
                with zf.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, array)
        info = zipfile.ZipInfo("params/W1.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (3072, nbytes // 3072 // 4)})
            chunk = bytes(1 << 22)
            for _ in range(nbytes // len(chunk)):
                f.write(chunk)
    return path


def test_a_zip_bomb_is_refused_before_it_is_decompressed(smoke_run, tmp_path):
    out, _ = smoke_run
    bomb = _bomb(out / "model.npz", tmp_path / "model.npz", 128 << 20)
    assert bomb.stat().st_size < 1 << 20  # 128 MiB of zeros in well under 1 MiB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"params/W1 declares shape \(3072, 10922\), 128.0 MiB: more than the "
                                            r"384.0 KiB allowed"):
            load_checkpoint(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the header was read, not the 128 MiB behind it

    # The bomb declared 3.2 GB: its declared size alone refuses it (central directory patched).
    data = bytearray(bomb.read_bytes())
    entry = next(i for i in _all(data, b"PK\x01\x02") if data[i + 46:i + 46 + 13] == b"params/W1.npy")
    struct.pack_into("<I", data, entry + 24, 3_200_000_000)  # the entry's uncompressed size
    big = tmp_path / "big" / "model.npz"
    big.parent.mkdir()
    big.write_bytes(bytes(data))
    message = refused(tmp_path, "evaluate", "--checkpoint", big)
    assert "members declare 3.0 GiB or more once decompressed" in message and "refused" in message


def _all(data, needle):
    start = data.find(needle)
    while start >= 0:
        yield start
        start = data.find(needle, start + 1)


def test_too_many_members_are_refused_before_zipfile_reads_them(tmp_path):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(MAX_MEMBERS + 1):
            zf.writestr(f"params/W{i}.npy", b"")
    assert f"lists {MAX_MEMBERS + 1} members" in refused(tmp_path, "evaluate", "--checkpoint", path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.npy", b"")
    assert "unexpected member '../evil.npy'" in refused(tmp_path, "evaluate", "--checkpoint", path)
