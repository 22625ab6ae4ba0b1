"""Sweeps a careless user starts: absurd sizes in a trial and a wrong $RAY_ADDRESS are one line, before the
sweep folder is made or locked, before Ray starts and before any data is loaded, on both backends."""

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hostile import ROOT, SMOKE, invoke, one_line, untouched

from cs_nets.cli import main
from cs_nets.errors import ConfigError
from cs_nets.sweep import check_trials_fit, expand_trials, grid_spec, load_spec
from cs_nets.sweep.folder import record

SPIRAL = ROOT / "configs" / "toy_spiral.yaml"
BACKENDS = ["local", pytest.param("ray", marks=pytest.mark.ray)]

# How the trials are given -> (base config, spec parameters or --grid values, the trial and its swept values the
# message names, the keys check_fits says to lower). Sizes no machine holds: terabytes at least.
ABSURD = {
    "synthetic_train in a spec's grid": (
        SMOKE, "data.synthetic_train: [300, 10000000000]", "trial-001: data.synthetic_train=10000000000",
        "data.synthetic_train / data.synthetic_test"),
    "synthetic_train in a --grid": (
        SMOKE, ["data.synthetic_train=300,10000000000"], "trial-001: data.synthetic_train=10000000000",
        "data.synthetic_train / data.synthetic_test"),
    "a drawn hidden_dims of 1e9": (
        SMOKE, "model.hidden_dims: {choice: [[1000000000]]}", "trial-000: model.hidden_dims=[1000000000]",
        "model.hidden_dims"),
    "hidden_dims of 1e9 in a --grid": (
        SMOKE, ["model.hidden_dims=[16],[1000000000]"], "trial-001: model.hidden_dims=[1000000000]",
        "model.hidden_dims"),
    "synthetic_test drawn by randint": (
        SMOKE, "data.synthetic_test: {randint: [10000000000, 10000000001]}",
        "trial-000: data.synthetic_test=10000000000", "data.synthetic_train / data.synthetic_test"),
    "a million classes of 2-D points": (
        SPIRAL, "data.classes: [3, 1000000]", "trial-001: data.classes=1000000", "data.classes"),
    "1e13 epochs in a --grid": (
        SMOKE, ["train.num_epochs=2,10000000000000"], "trial-001: train.num_epochs=10000000000000",
        "train.num_epochs (x batches per epoch)"),
}


def sweep_args(world, base, given) -> list:
    """The command line's source of trials: a spec written into `world` (text), or --config and --grid (a list)."""
    if isinstance(given, list):
        return ["--config", base, *(w for g in given for w in ("--grid", g))]
    (world / "spec.yaml").write_text(f"base: {base}\nnum_samples: 2\nparameters:\n  {given}\n")
    return ["spec.yaml"]


def refusal(trial: str, keys: str) -> str:
    return (r"^error: the run needs about [0-9.]+ [TPE]iB of memory but [0-9.]+ [KMGT]?i?B is available; the "
            rf"largest part is .*: lower {re.escape(keys)} \(in {re.escape(trial)}\)$")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("base,given,trial,keys", ABSURD.values(), ids=ABSURD.keys())
def test_an_absurd_size_in_a_trial_is_one_line_before_anything_is_written(tmp_path, backend, base, given, trial,
                                                                          keys):
    ray = pytest.importorskip("ray") if backend == "ray" else None
    outcome = invoke(tmp_path, ["sweep", *sweep_args(tmp_path, base, given), "--backend", backend, "--out", "o"])
    one_line(outcome, 2, refusal(trial, keys))
    untouched(outcome)  # no sweep folder, no lock beside it, nothing in the data folder
    if ray is not None:
        assert not ray.is_initialized()  # refused before Ray was started


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_of_a_sweep_whose_trials_cannot_fit_here(tmp_path, backend):
    """A sweep started on a bigger machine, continued on this one: --resume refuses in one line, before the
    folder is locked (the backend is the sweep's own, read from its sweep.json)."""
    if backend == "ray":
        pytest.importorskip("ray")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(f"base: {SMOKE}\nparameters:\n  data.synthetic_train: [300, 10000000000]\n")
    spec = load_spec(spec_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps(record(spec, expand_trials(spec), backend)))
    if backend == "ray":
        (out / ".ray" / "tune").mkdir(parents=True)  # Ray Tune's state, what --resume restores
    outcome = invoke(tmp_path, ["sweep", "spec.yaml", "--out", "o", "--resume"])
    one_line(outcome, 2, refusal("trial-001: data.synthetic_train=10000000000",
                                 "data.synthetic_train / data.synthetic_test"))
    untouched(outcome)


@pytest.mark.ray
@pytest.mark.parametrize("address,code,message", [
    ("127.0.0.1:1", 1, "error: cannot connect to Ray at 127.0.0.1:1: Connection refused"),
    ("nonsense", 2, "error: $RAY_ADDRESS nonsense: expected HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379)"),
], ids=["nothing listens", "not an address"])
def test_a_wrong_ray_address_in_the_environment_is_one_line(tmp_path, address, code, message):
    ray = pytest.importorskip("ray")
    (tmp_path / "spec.yaml").write_text(f"base: {SMOKE}\nparameters:\n  model.reg: [0]\n")
    outcome = invoke(tmp_path, ["sweep", "spec.yaml", "--out", "o"], env={"RAY_ADDRESS": address})
    one_line(outcome, code, f"^{re.escape(message)}$")
    untouched(outcome)
    assert not ray.is_initialized()


# ----------------------------------------------------------------------------- the library's side


def test_check_trials_fit_names_the_first_trial_that_cannot_fit():
    from cs_nets.memory import estimate_bytes

    trials = expand_trials(grid_spec(SMOKE, ["model.reg=0,1", "data.synthetic_train=300,400"]))
    needed = [sum(estimate_bytes(t.config).values()) for t in trials]
    assert needed[1] == needed[3] == max(needed) > needed[0] == needed[2]
    check_trials_fit(trials, available=max(needed))  # each fits, just
    with pytest.raises(ConfigError) as err:
        check_trials_fit(trials, available=max(needed) - 1)  # the larger data (trial-001, trial-003) does not
    assert str(err.value).endswith(" (in trial-001: model.reg=0, data.synthetic_train=400)")
    assert "\n" not in str(err.value)


def test_the_library_drivers_check_the_sizes_before_writing(tmp_path):
    from cs_nets.sweep.local import run_local_sweep

    spec = grid_spec(SMOKE, ["data.synthetic_train=300,10000000000"])
    with pytest.raises(ConfigError, match=r"\(in trial-001: data.synthetic_train=10000000000\)$"):
        run_local_sweep(spec, expand_trials(spec), tmp_path / "o")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.ray
def test_the_ray_driver_checks_the_sizes_before_ray_starts_or_data_is_loaded(tmp_path):
    ray = pytest.importorskip("ray")
    from cs_nets.sweep.tune import run_sweep

    spec = grid_spec(SMOKE, ["model.hidden_dims=[16],[1000000000]"])
    with pytest.raises(ConfigError, match=r"\(in trial-001: model.hidden_dims=\[1000000000\]\)$"):
        run_sweep(spec, expand_trials(spec), tmp_path / "o")
    assert list(tmp_path.iterdir()) == [] and not ray.is_initialized()


def test_out_of_memory_while_preparing_shared_data_names_its_trials(tmp_path):
    """A real MemoryError (the address space limited to 3 GiB, 12 GB of images asked for), past the estimate:
    the driver's loading of the shared data says so in one line naming the trials."""
    code = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from cs_nets.errors import DataError
from cs_nets.sweep import expand_trials, grid_spec
from cs_nets.sweep.data import load_datasets
spec = grid_spec({str(SMOKE)!r}, ["model.reg=0,1,2", "data.synthetic_train=1000000"])
try:
    load_datasets(spec, expand_trials(spec))
except DataError as err:
    print(err)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert re.fullmatch(r"the data of trial-000, trial-001 and trial-002 \(data.synthetic_train=1000000 from --grid "
                        r"data.synthetic_train\): out of memory while preparing it \(.+\)", line), line


def test_a_memory_error_in_the_sweep_driver_is_one_line(tmp_path, monkeypatch):
    """Whatever runs out of memory in the driver after the estimate said yes: one line, exit 1."""
    import cs_nets.sweep.local

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.45 TiB for an array with shape (1000000000, 2048)")

    monkeypatch.setattr(cs_nets.sweep.local, "run_local_sweep", no_memory)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", "--config", str(SMOKE), "--grid", "model.reg=0", "--backend", "local",
                                       "--out", "o"])
    assert result.exit_code == 1 and not isinstance(result.exception, MemoryError), result.output
    assert result.output.splitlines() == [
        "error: the sweep's driver ran out of memory (Unable to allocate 7.45 TiB for an array with shape "
        "(1000000000, 2048)); lower the sizes of its trials"]
