"""Property-based fuzzing of everything cs_nets reads from disk: any input ends in a result or a CsNetsError.

Configs (text, bytes, YAML-ish token soup, well-formed YAML of arbitrary values,
--set overrides), CIFAR-10 batch files (random and mutated), checkpoints (mutated
bytes and arbitrary metadata) and run directories (summary.json, metrics.jsonl and
the sweep's files). Example counts are bounded so the suite stays fast.
"""

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from archive_writer import binary_batch_bytes, python_batch_bytes, python_meta_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs_nets.config import SECTION_CLASSES, Config, load_config
from cs_nets.data.batches import read_batch, read_meta
from cs_nets.data.cifar10 import CLASS_NAMES
from cs_nets.data.pipeline import InputPipeline
from cs_nets.data.preprocess import Normalizer
from cs_nets.errors import ConfigError, CsNetsError, DataError
from cs_nets.nn.models import build_model
from cs_nets.runs.checkpoint import load_checkpoint, save_checkpoint
from cs_nets.runs.reader import collect_runs, read_metrics

FUZZ = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6), inner, max_size=4), max_leaves=16)
KEYS = sorted({f.name for cls in SECTION_CLASSES.values() for f in cls.__dataclass_fields__.values()})
SECTIONS = [*SECTION_CLASSES, "features", "seed", "nope"]
YAML_TOKENS = ["&a ", "*a", "&b ", "*b", "[", "]", "{", "}", ": ", ", ", "- ", "\n", "  ", "model", "type",
               "hidden_dims", "optim", "learning_rate", "1e400", ".nan", "-.inf", "---", "...", "|", ">", "'",
               '"', "# c", "<<", "? ", "!!python/object/apply:os.system", "!!binary ", "!!float", "2024-13-45",
               "0x1F", "1_000", "~", "null", "yes", "linear", "fc_net", "10000000000", "\t", "\x00", "é"]


def _write(folder, name, data):
    path = Path(folder) / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


def _load_config_or_error(data, overrides=()):
    with tempfile.TemporaryDirectory() as folder:
        try:
            config = load_config(_write(folder, "fuzz.yaml", data), list(overrides))
        except ConfigError as err:
            assert "\n" not in str(err) and len(str(err)) < 1000
            return None
    assert isinstance(config, Config)
    return config


@FUZZ
@given(st.text(max_size=400))
def test_config_text(text):
    _load_config_or_error(text.replace("\ud800", ""))


@FUZZ
@given(st.binary(max_size=400))
def test_config_bytes(data):
    _load_config_or_error(data)


@FUZZ
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40))
def test_config_yaml_token_soup(tokens):
    _load_config_or_error("".join(tokens))


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTIONS), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)
                       | VALUES, max_size=4))
def test_config_of_arbitrary_values(raw):
    _load_config_or_error(yaml.safe_dump(raw))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([f"{s}.{k}" for s in SECTION_CLASSES for k in KEYS[:12]]
                                          + ["seed", "features", "x.y.z", ""]),
                          st.text(max_size=30) | st.sampled_from(YAML_TOKENS)), max_size=4))
def test_config_overrides(pairs):
    _load_config_or_error("{}\n", [f"{key}={value}".replace("\ud800", "") for key, value in pairs])


def _valid_batch(fmt):
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (3, 3072), dtype=np.uint8), rng.integers(0, 10, 3)
    if fmt == "python":
        return python_batch_bytes(X, y, "batch", [f"{i}.png" for i in range(3)])
    return binary_batch_bytes(X, y)


def _mutate(data, edits):
    data = bytearray(data)
    for position, value in edits:
        if data:
            data[position % len(data)] = value
    return bytes(data)


def _read_batch_or_error(fmt, data):
    try:
        X, y = read_batch(fmt, io.BytesIO(data), "fuzz")
    except DataError as err:
        assert "\n" not in str(err)
        return
    assert X.dtype == np.uint8 and X.shape == (len(y), 3072) and y.dtype == np.int64
    assert len(y) == 0 or (y.min() >= 0 and y.max() <= 9)


@FUZZ
@given(st.sampled_from(["python", "binary"]), st.binary(max_size=8000))
def test_batch_random_bytes(fmt, data):
    _read_batch_or_error(fmt, data)


@FUZZ
@given(st.sampled_from(["python", "binary"]), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                       min_size=1, max_size=8), st.integers(0, 12_000))
def test_batch_mutated(fmt, edits, cut):
    _read_batch_or_error(fmt, _mutate(_valid_batch(fmt), edits)[:cut])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)), max_size=8), st.integers(0, 2000))
def test_batch_meta_mutated(edits, cut):
    data = _mutate(python_meta_bytes(list(CLASS_NAMES), 3), edits)[:cut]
    for fmt, blob in (("python", data), ("binary", data), ("binary", "\n".join(CLASS_NAMES).encode())):
        try:
            names = read_meta(fmt, io.BytesIO(blob), "fuzz")
        except DataError:
            continue
        assert len(names) == 10 and all(isinstance(n, str) for n in names)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    """A small valid checkpoint (fc_net 8 -> 3 -> 10 with mean/std statistics), as bytes."""
    model = build_model("fc_net", 8, 10, hidden_dims=[3])
    inputs = InputPipeline([], Normalizer("mean_std")).fit(np.random.default_rng(0).random((20, 8)))
    inputs.data_fingerprint = "0" * 32
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    save_checkpoint(path, model, inputs, meta={"class_names": list(CLASS_NAMES),
                                               "config": Config().to_dict()})
    return path.read_bytes()


def _load_checkpoint_or_error(data):
    with tempfile.TemporaryDirectory() as folder:
        try:
            model, inputs, meta = load_checkpoint(_write(folder, "model.npz", data))
        except DataError as err:
            assert "\n" not in str(err) and len(str(err)) < 1000
            return None
    assert set(model.params) and isinstance(meta, dict)
    return model


def test_the_fuzzed_checkpoint_is_valid(checkpoint_bytes):
    assert _load_checkpoint_or_error(checkpoint_bytes) is not None


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, 10**5))
def test_checkpoint_mutated_bytes(checkpoint_bytes, edits, cut):
    _load_checkpoint_or_error(_mutate(checkpoint_bytes, edits)[:cut])


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["format", "model_type", "input_dim", "num_classes", "dtype",
                                                "hyperparams", "inputs", "class_names", "config",
                                                "data_fingerprint", "other"]), VALUES, min_size=1, max_size=3))
def test_checkpoint_arbitrary_meta(checkpoint_bytes, changes):
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "model.npz", checkpoint_bytes)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays["meta"]))
        meta.update(changes)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(path, **arrays)
        _load_checkpoint_or_error(path.read_bytes())


RUN_TEXT = st.text(max_size=300) | st.builds(json.dumps, VALUES) | st.builds(
    lambda d: json.dumps({"status": "completed", **d}), st.dictionaries(
        st.sampled_from(["status", "val_accuracy", "epochs", "overrides", "command", "pid", "host"]), VALUES))


@FUZZ
@given(summary=RUN_TEXT | st.none(), metrics=st.lists(RUN_TEXT, max_size=4) | st.none(),
       args=st.text(max_size=60) | st.none(), exit_status=st.text(max_size=6) | st.none())
def test_run_directories(summary, metrics, args, exit_status):
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run-001"
        run.mkdir()
        (run / "config.yaml").write_text("seed: 0\n")
        for name, text in (("summary.json", summary), ("sweep_args", args), ("exit_status", exit_status),
                           ("metrics.jsonl", None if metrics is None else "\n".join(metrics))):
            if text is not None:
                _write(run, name, text.replace("\ud800", ""))
        problems = []
        records = read_metrics(run, problems)
        assert all(isinstance(r, dict) for r in records) and all(isinstance(p, str) for p in problems)
        try:
            rows = collect_runs(folder)
        except CsNetsError as err:  # pragma: no cover - a folder with config.yaml is always a run
            raise AssertionError(f"collect_runs failed: {err}") from None
        assert len(rows) == 1 and isinstance(rows[0]["status"], str)
        assert rows[0]["val_accuracy"] is None or isinstance(rows[0]["val_accuracy"], float)
