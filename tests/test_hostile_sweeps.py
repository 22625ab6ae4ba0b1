"""Sweeps a careless user starts: absurd sizes in a trial and a wrong $RAY_ADDRESS are one line, before the
sweep folder is made or locked, before Ray starts and before any data is loaded, on both backends; so is every
spec, grid or --out folder a sweep refuses, and nothing outside the sweep's own lock file changes."""

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hostile import ROOT, SMOKE, invoke, one_line, spawn, untouched

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


# ----------------------------------------------------------------------------- specs, grids and folders refused


def spec(text: str):
    return lambda world: (world / "spec.yaml").write_text(f"base: {SMOKE}\n{text}")


def latin1_spec(world):
    (world / "spec.yaml").write_bytes(f"base: {SMOKE}\nparameters:\n  model.reg: [0] # caf".encode() + b"\xe9\n")


def recorded(grid: str, backend: str = "local"):
    """A folder o/ that holds the record (sweep.json) of a sweep over `grid`, as a stopped sweep leaves it."""
    def make(world):
        (world / "o").mkdir()
        swept = grid_spec(SMOKE, [grid])
        (world / "o" / "sweep.json").write_text(json.dumps(record(swept, expand_trials(swept), backend)))
    return make


def a_file(world):
    (world / "o").write_text("my notes")


def a_train_run(world):
    from cs_nets.config import load_config
    from cs_nets.runs.task import run

    run(load_config(SMOKE, ["train.num_epochs=1", "data.synthetic_train=300", "data.synthetic_test=100",
                            "data.num_val=50"]), world / "o")


THOUSANDS = ",".join(str(i) for i in range(3000))
REG = ["--config", SMOKE, "--grid", "model.reg=0,1"]

# what the world holds -> (the command line's source of trials and options, exit code, the one line, what the
# sweep may leave: its lock file beside --out, when the refusal comes once the folder is locked)
REFUSED = {
    "a non-UTF-8 spec": (latin1_spec, ["spec.yaml"], 2,
                         r"^error: spec.yaml:3: sweep spec is not UTF-8 text \(byte 0xe9 at offset \d+\)$", ()),
    "an unknown spec key": (spec("num_sample: 3\nparameters:\n  model.reg: [0]\n"), ["spec.yaml"], 2,
                            r"^error: spec.yaml:2: unknown key 'num_sample'; did you mean 'num_samples'\?$", ()),
    "a bad value in one trial": (spec("num_samples: 8\nparameters:\n  model.reg: {choice: [1.0e-3, -2]}\n"),
                                 ["spec.yaml"], 2, r"^error: spec.yaml:4: model.reg: expected a value >= 0.0, got "
                                                   r"-2.0 \(in trial-00\d: model.reg=-2\)$", ()),
    "output.dir swept": (spec("parameters:\n  output.dir: [a, b]\n"), ["spec.yaml"], 2,
                         r"^error: spec.yaml:3: output.dir cannot be swept", ()),
    "num_samples of a billion": (spec("num_samples: 1000000000\nparameters:\n  model.reg: {uniform: [0, 1]}\n"),
                                 ["spec.yaml"], 2, r"^error: spec.yaml:2: num_samples 1000000000 is 1,000,000,000 "
                                                   r"trials, more than a sweep may have \(10,000\); sweep fewer", ()),
    "a 3,000 x 3,000 grid": (None, ["--config", SMOKE, "--grid", f"seed={THOUSANDS}", "--grid",
                                    f"data.num_val={THOUSANDS}"], 2, r"grid 3000 x 3000 is 9,000,000 trials", ()),
    "unbalanced brackets in --grid": (None, ["--config", SMOKE, "--grid", "model.hidden_dims=[16,8"], 2,
                                      r"^error: --grid model.hidden_dims=\[16,8: unbalanced brackets$", ()),
    "a key both --set and swept": (None, [*REG, "--set", "model.reg=3"], 2,
                                   r"^error: --set model.reg=3: model.reg is swept by --grid model.reg; remove it", ()),
    "--out is a file": (a_file, REG, 2, r"^error: --out o: exists and is not a directory$", ()),
    "--out holds a csnets train run": (a_train_run, REG, 2, r"^error: --out o holds a csnets train run, not a "
                                                            r"sweep: choose another --out$", ()),
    "--out holds a sweep, without --resume": (recorded("model.reg=0,1"), REG, 2,
                                              r"already holds a sweep: continue it with --resume", (".o.lock",)),
    "--resume where no sweep is": (lambda world: (world / "o").mkdir(), [*REG, "--resume"], 2,
                                   r"^error: --resume: \S*o holds no sweep \(no sweep.json\)$", (".o.lock",)),
    "--resume with other trials": (recorded("model.reg=0,2"), [*REG, "--resume"], 2,
                                   r"does not give the trials \(or scheduler\) of the sweep in", (".o.lock",)),
    "--resume of a damaged sweep.json": (lambda world: (world / "o").mkdir() or (world / "o" / "sweep.json")
                                         .write_text("{not json"), [*REG, "--resume"], 1,
                                         r"^error: \S*o/sweep.json", (".o.lock",)),
}


@pytest.mark.parametrize("make,source,code,pattern,own", REFUSED.values(), ids=REFUSED.keys())
def test_a_sweep_that_cannot_run_is_one_line_and_writes_nothing(tmp_path, make, source, code, pattern, own):
    if make is not None:
        make(tmp_path)
    outcome = invoke(tmp_path, ["sweep", *source, "--backend", "local", "--out", "o"], own=own)
    one_line(outcome, code, pattern)
    untouched(outcome)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_as_the_spec_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    outcome = spawn(tmp_path, ["sweep", "spec.yaml", "--backend", "local", "--out", "o"], timeout=30)
    one_line(outcome, 2, r"^error: sweep spec spec.yaml is a FIFO \(named pipe\), not a regular file: refused$")
    untouched(outcome)


# ----------------------------------------------------------------------------- the library's side


def test_check_trials_fit_names_the_first_trial_that_cannot_fit(tmp_path):
    import yaml

    from cs_nets.memory import estimate_bytes

    # data.storage float32: under auto, a float set one byte too big would be stored as uint8 and fit
    config = yaml.safe_load(SMOKE.read_text())
    config["data"]["storage"] = "float32"
    (tmp_path / "smoke32.yaml").write_text(yaml.safe_dump(config))
    trials = expand_trials(grid_spec(tmp_path / "smoke32.yaml", ["model.reg=0,1", "data.synthetic_train=300,400"]))
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
