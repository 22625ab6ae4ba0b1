"""A bag-of-words checkpoint holds its codebooks as ``inputs/features/<i>/<array>``: each is admitted only
where the meta has a ``bow`` transform, with the shape that transform implies, finite."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hostile import invoke, one_line, untouched

from cs_nets.cli import main
from cs_nets.errors import DataError
from cs_nets.runs.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def bow_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bow")
    raw = yaml.safe_load((ROOT / "configs" / "two_layer_bow.yaml").read_text())
    raw["data"] = {"source": "synthetic", "synthetic_train": 300, "synthetic_test": 60, "num_val": 40}
    raw["features"][2].update(words=8, samples=1000, iterations=1)
    raw["train"]["num_epochs"] = 1
    raw["model"]["hidden_dims"] = [16]
    config = folder / "bow.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = run("train", "--config", config, "--out", folder / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return folder / "run" / "model.npz"


def arrays_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_a_bow_checkpoint_round_trips_its_codebook(bow_run):
    _, inputs, meta = load_checkpoint(bow_run)
    saved = arrays_of(bow_run)
    assert sorted(k for k in saved if k.startswith("inputs/features/")) == [
        "inputs/features/2/centroids", "inputs/features/2/whiten_matrix", "inputs/features/2/whiten_mean"]
    assert np.array_equal(inputs.codebooks[2].centroids, saved["inputs/features/2/centroids"])
    assert list(inputs.codebooks) == [2]


def _meta(arrays):
    return json.loads(str(arrays["meta"]))


def _set_meta(arrays, meta):
    arrays["meta"] = np.array(json.dumps(meta))


def _move_codebook(arrays, to):
    for name in [k for k in arrays if k.startswith("inputs/features/2/")]:
        arrays[name.replace("/2/", f"/{to}/")] = arrays.pop(name)


def _no_whiten(arrays):
    meta = _meta(arrays)
    meta["inputs"]["features"][2]["whiten"] = False
    _set_meta(arrays, meta)


CASES = {
    "codebook under a hog transform": (lambda a: _move_codebook(a, 0), "belongs to no bow transform"),
    "codebook past the last transform": (lambda a: _move_codebook(a, 7), "belongs to no bow transform"),
    "index with a leading zero": (lambda a: _move_codebook(a, "02"), "unexpected member"),
    "index of three digits": (lambda a: _move_codebook(a, 100), "unexpected member"),
    "unknown codebook array": (lambda a: a.update({"inputs/features/2/labels": np.zeros(8, np.float32)}),
                               "unexpected member"),
    "path escape": (lambda a: a.update({"inputs/features/2/../../x": np.zeros(1, np.float32)}),
                    "unexpected member"),
    "centroids of the wrong shape": (lambda a: a.update({"inputs/features/2/centroids": np.zeros((9, 108),
                                                                                                  np.float32)}),
                                     "has shape (9, 108)"),
    "centroids declaring a huge shape": (lambda a: a.update({"inputs/features/2/centroids": np.zeros((8, 10**6),
                                                                                                      np.uint8)}),
                                         "not accepted"),
    "centroids as integers": (lambda a: a.update({"inputs/features/2/centroids": np.zeros((8, 108), np.int32)}),
                              "not accepted"),
    "NaN centroids": (lambda a: a.__setitem__("inputs/features/2/centroids",
                                              np.full((8, 108), np.nan, np.float32)), "finite"),
    "infinite whitening": (lambda a: a.__setitem__("inputs/features/2/whiten_matrix",
                                                   np.full((108, 108), np.inf, np.float32)), "finite"),
    "centroids missing": (lambda a: a.pop("inputs/features/2/centroids"), "lacks 'centroids'"),
    "whitening missing": (lambda a: a.pop("inputs/features/2/whiten_matrix"), "lacks 'whiten_matrix'"),
    "whitening arrays for a transform that does not whiten": (_no_whiten, "does not whiten"),
    "words changed in the meta": (lambda a: _set_meta(a, {**_meta(a), "inputs": {
        **_meta(a)["inputs"], "features": [*_meta(a)["inputs"]["features"][:2],
                                           {**_meta(a)["inputs"]["features"][2], "words": 9}]}}),
        "has shape (8, 108)"),
}


@pytest.mark.parametrize("mutate,expected", CASES.values(), ids=CASES.keys())
def test_a_crafted_codebook_member_is_one_line(bow_run, tmp_path, mutate, expected):
    arrays = arrays_of(bow_run)
    mutate(arrays)
    dest = tmp_path / "model.npz"
    np.savez(dest, **arrays)
    with pytest.raises(DataError, match=None) as err:
        load_checkpoint(dest)
    assert expected in str(err.value) and "\n" not in str(err.value)
    outcome = invoke(tmp_path, ["evaluate", "--checkpoint", dest, "--quiet"])
    one_line(outcome, 1, re.escape(expected))
    untouched(outcome)  # nothing written: no feature cache, no file beside the checkpoint
