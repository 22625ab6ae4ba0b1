"""csnets sweep on the real Ray Tune (no mocks), on synthetic data.

One Ray cluster of two nodes on this machine (ray.cluster_utils.Cluster, 1 CPU
each) serves the whole module: the sweeps run in-process through click's runner,
and the sweep processes that get interrupted or killed connect to the same
cluster with --address, so no test starts or leaves Ray processes of its own.
The cluster listens on 127.0.0.1 only: Ray would otherwise bind (and rewrite
127.0.0.1 to) the machine's first non-loopback address.
The spec tests need no Ray at all (the tests marked ``ray`` are skipped without it).
"""

import http.server
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from processes import wait_gone

from cs_nets.cli import main
from cs_nets.config import config_from_dict, load_config
from cs_nets.data.pipeline import prepare_dataset
from cs_nets.errors import ConfigError
from cs_nets.runs.checkpoint import load_checkpoint
from cs_nets.runs.task import read_run_config, run
from cs_nets.sweep import expand_trials, load_spec
from cs_nets.sweep.data import data_key
from cs_nets.sweep.spec import format_value

# Ray reads it when imported: get_node_ip_address() is then 127.0.0.1, so the driver and
# the sweeps started with --address 127.0.0.1:PORT connect over the loopback only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
LOOPBACK = "127.0.0.1"

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def write_spec(folder, text, name="sweep.yaml"):
    path = Path(folder) / name
    path.write_text(f"base: {SMOKE}\n" + text)
    return path


def sweep(*args):
    return CliRunner().invoke(main, ["sweep", *map(str, args)])


def summaries(out):
    return {p.name: json.loads((p / "summary.json").read_text())
            for p in sorted(Path(out).glob("trial-*")) if (p / "summary.json").is_file()}


def epochs_in(run_dir):
    return [json.loads(line)["epoch"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def params_of(run_dir):
    model, _, _ = load_checkpoint(run_dir)
    return model.params


def assert_same_params(a, b):
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def train_alone(config_dict, out):
    """What `csnets train` gives for this config: the reference a trial must equal bit for bit.

    With one BLAS thread, as each trial has: OpenBLAS may split a product's sums differently
    with two threads, so only the same thread count promises the same bits.
    """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        result = run(config_from_dict(config_dict), out)
    return params_of(result.run_dir)


# --------------------------------------------------------------------------- the spec (no Ray)


@pytest.mark.parametrize("text, message", [
    ("num_sample: 3\nparameters:\n  model.reg: [0, 1]\n",
     "sweep.yaml:2: unknown key 'num_sample'; did you mean 'num_samples'?"),
    ("parameters:\n  optim.learnig_rate: [0.1]\n",
     "sweep.yaml:3: unknown config key 'optim.learnig_rate' in parameters; did you mean 'optim.learning_rate'?"),
    ("parameters:\n  model.reg: {logunifrm: [1, 2]}\n",
     "sweep.yaml:3: model.reg: unknown distribution 'logunifrm'; did you mean 'loguniform'?"),
    ("parameters:\n  model.reg: {loguniform: [0, 1]}\n",
     "sweep.yaml:3: model.reg: loguniform: expected 0 < low < high (a log scale), got [0, 1]"),
    ("parameters:\n  model.reg: {uniform: [2, 1]}\n", "sweep.yaml:3: model.reg: uniform: expected low < high"),
    ("parameters:\n  train.batch_size: {randint: [10, 5.5]}\n",
     "sweep.yaml:3: train.batch_size: randint: expected [low, high] as whole numbers, got [10, 5.5]"),
    ("parameters:\n  model.reg: 0.1\n", "sweep.yaml:3: model.reg: expected a list of values (a grid) or one of"),
    ("parameters:\n  output.dir: [a, b]\n", "sweep.yaml:3: output.dir cannot be swept"),
    ("scheduler:\n  type: asha\n  grace: 2\nparameters:\n  model.reg: [1]\n",
     "sweep.yaml:4: unknown key 'scheduler.grace'; did you mean 'grace_period'?"),
    ("scheduler: {type: ashaa}\nparameters:\n  model.reg: [1]\n",
     "sweep.yaml:2: scheduler.type: expected one of none, asha, got 'ashaa'"),
    ("scheduler: {type: none, grace_period: 2}\nparameters:\n  model.reg: [1]\n",
     "sweep.yaml:2: scheduler.grace_period is for type: asha, not type: none"),
    ("cpus_per_trial: 0\nparameters:\n  model.reg: [1]\n", "sweep.yaml:2: cpus_per_trial: expected a value > 0, got 0"),
    ("parameters: {}\n", "sweep.yaml:2: 'parameters' must map config keys to values to try"),
    # every trial's config is validated before anything runs, at the spec's line, naming the trial
    ("parameters:\n  optim.learning_rate: [1.0e-3, 1.0e-2]\n  model.reg: [1.0e-3, -1]\n",
     "sweep.yaml:4: model.reg: expected a value >= 0.0, got -1.0 (in trial-001: optim.learning_rate=0.001, model.reg=-1)"),
    ("parameters:\n  model.hidden_dims: {choice: [[200, 100]]}\n",
     "sweep.yaml:3: two_layer has one hidden layer, got model.hidden_dims=[200, 100]; use model.type: fc_net for more (in trial-000"),
    ("scheduler: {type: asha, grace_period: 4}\nparameters:\n  model.reg: [1]\n",
     "sweep.yaml:2: scheduler.grace_period (4) is not below the trials' train.num_epochs (4): ASHA would never stop a trial"),
])
def test_spec_errors_name_the_line_and_the_closest_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        expand_trials(load_spec(write_spec(tmp_path, text)))
    assert str(err.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(err.value)


def test_spec_errors_through_the_cli_exit_2_in_one_line(tmp_path):
    spec = write_spec(tmp_path, "parameters:\n  model.reg: {choice: [1.0e-3, -2]}\nnum_samples: 8\n")
    result = sweep(spec, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "sweep.yaml:3: model.reg: expected a value >= 0.0, got -2.0 (in trial-" in result.output
    assert not (tmp_path / "out").exists()  # failed before anything ran

    missing = tmp_path / "nobase.yaml"
    missing.write_text("base: nope.yaml\nparameters:\n  model.reg: [1]\n")
    result = sweep(missing)
    assert result.exit_code == 2 and f"nobase.yaml:1: base: no config file {tmp_path / 'nope.yaml'}" in result.output

    clash = write_spec(tmp_path, "parameters:\n  model.reg: [0, 1]\n", name="clash.yaml")
    result = sweep(clash, "--set", "model.reg=3")
    assert result.exit_code == 2 and "--set model.reg=3: model.reg is swept by" in result.output


def test_trials_are_the_grid_crossed_with_the_draws(tmp_path):
    spec = load_spec(write_spec(tmp_path, """num_samples: 3
seed: 7
parameters:
  optim.learning_rate: [1.0e-3, 3.0e-3]
  model.reg: {loguniform: [1.0e-5, 1.0e-2]}
  model.hidden_dims: {choice: [[8], [16]]}
  optim.momentum: {uniform: [0.5, 0.9]}
  train.batch_size: {randint: [50, 60]}
  seed: [0, 1]
"""))
    trials = expand_trials(spec)

    # The plain loops the expansion must equal: samples outside, the grid inside
    # (first grid key slowest), random keys drawn in the spec's order from one generator.
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(3):
        for lr in (1e-3, 3e-3):
            for seed in (0, 1):
                reg = math.exp(math.log(1e-5) + (math.log(1e-2) - math.log(1e-5)) * rng.random())
                hidden = [[8], [16]][int(rng.integers(2))]
                momentum = 0.5 + (0.9 - 0.5) * rng.random()
                batch = int(rng.integers(50, 60))
                expected.append({"optim.learning_rate": lr, "model.reg": float(f"{reg:.4g}"),
                                 "model.hidden_dims": hidden, "optim.momentum": float(f"{momentum:.4g}"),
                                 "train.batch_size": batch, "seed": seed})
    assert [t.params for t in trials] == expected
    assert [t.name for t in trials] == [f"trial-{i:03d}" for i in range(12)]
    assert list(trials[0].params) == list(expected[0])  # the spec's order
    for t in trials:  # each config is the base with the trial's values, validated
        raw = load_config(SMOKE).to_dict()
        for key, value in t.params.items():
            *section, last = key.split(".")
            (raw[section[0]] if section else raw)[last] = value
        assert t.config.to_dict() == raw
        assert all(format_value(v) == o.split("=", 1)[1] for v, o in zip(t.params.values(), t.overrides))
    assert [t.params for t in expand_trials(spec)] == expected  # same spec, same trials
    other = load_spec(write_spec(tmp_path, spec.path.read_text().split("\n", 1)[1].replace("seed: 7", "seed: 8"),
                                 name="b.yaml"))
    assert [t.params["model.reg"] for t in expand_trials(other)] != [p["model.reg"] for p in expected]


def test_loguniform_draws_are_uniform_in_the_logarithm(tmp_path):
    spec = load_spec(write_spec(tmp_path, "num_samples: 2000\nparameters:\n  model.reg: {loguniform: [1.0e-6, 1.0e-2]}\n"))
    logs = np.log10([t.params["model.reg"] for t in expand_trials(spec)])
    assert logs.min() >= -6 and logs.max() <= -2
    counts, _ = np.histogram(logs, bins=4, range=(-6, -2))  # 500 expected per decade
    assert np.all(np.abs(counts - 500) < 80), counts


def test_a_deprecated_key_is_swept_as_its_new_name(tmp_path):
    with pytest.warns(UserWarning, match="model.hidden_dim is deprecated; sweep model.hidden_dims instead"):
        spec = load_spec(write_spec(tmp_path, "parameters:\n  model.hidden_dim: [16, 8]\n"))
    assert [t.config.model.hidden_dims for t in expand_trials(spec)] == [[16], [8]]


def test_values_read_back_from_their_text():
    from cs_nets.config import yaml_load

    for value in (1e-05, 0.003162, 3, [200, 100], "relu", "1e-3", True, None, 0.1, {"type": "hog"}):
        assert yaml_load(format_value(value)) == value


def test_data_is_shared_exactly_when_it_is_the_same(small_cifar_archives, tmp_path):
    from cs_nets.data.cifar10 import OFFICIAL
    from cs_nets.data.extract import safe_extract

    folder, _, _ = small_cifar_archives
    safe_extract(folder / OFFICIAL["python"].filename, tmp_path, OFFICIAL["python"].folder)

    def prepared(**changes):
        raw = load_config(None, [f"data.dir={tmp_path}", "data.num_val=50"]).to_dict()
        for key, value in changes.items():
            section, name = key.split("__") if "__" in key else (None, key)
            (raw[section] if section else raw)[name] = value
        config = config_from_dict(raw)
        return data_key(config), prepare_dataset(config, progress=False)

    def same(a, b):
        return all(np.array_equal(x, b.arrays()[name]) for name, x in a.arrays().items())

    key0, data0 = prepared(seed=0)
    key1, data1 = prepared(seed=1)
    assert key0 == key1 and same(data0, data1)  # a seed grid on CIFAR-10 loads it once
    key2, data2 = prepared(seed=1, data__shuffle=True)
    key3, data3 = prepared(seed=2, data__shuffle=True)
    assert len({key0, key2, key3}) == 3 and not same(data2, data3) and not same(data0, data2)
    key4, data4 = prepared(model__reg=0.5)
    assert key4 == key0 and same(data4, data0)
    synthetic = [data_key(config_from_dict({"data": {"source": "synthetic"}, "seed": s})) for s in (0, 1)]
    assert synthetic[0] != synthetic[1]  # synthetic images are drawn from the seed


def test_a_data_error_names_the_trials_that_share_the_data(good_and_incomplete_cifar, tmp_path):
    """What the Ray driver says when the data it prepares for its trials fails, before Tune starts (no Ray here)."""
    from cs_nets.errors import DataError
    from cs_nets.sweep.data import load_datasets, name_trials

    good, bad = good_and_incomplete_cifar
    sets = ["data.source=cifar10", "data.num_val=50"]
    problem = f"{bad / 'cifar-10-batches-py'} is incomplete: test_batch missing"
    spec_path = write_spec(tmp_path, f"parameters:\n  model.reg: [0, 1]\n  data.dir: [{good}, {bad}]\n")
    spec = load_spec(spec_path, sets)
    with pytest.raises(DataError) as err:
        load_datasets(spec, expand_trials(spec))
    assert str(err.value).startswith(f"the data of trial-001 and trial-003 (data.dir={bad} from {spec_path}:4): "
                                     f"{problem}")
    # not swept: the data of every trial, no spec line
    spec = load_spec(write_spec(tmp_path, "parameters:\n  model.reg: [0, 1, 2, 3, 4, 5]\n", name="b.yaml"),
                     [*sets, f"data.dir={bad}"])
    with pytest.raises(DataError) as err:
        load_datasets(spec, expand_trials(spec))
    assert str(err.value).startswith(f"the data of trial-000, trial-001, trial-002, trial-003 and 2 others: {problem}")
    assert "\n" not in str(err.value)
    assert name_trials(["trial-007"]) == "trial-007"


def test_the_cli_module_imports_neither_numpy_nor_ray():
    code = "import sys, cs_nets.cli; print(sorted({'numpy', 'ray'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes with 1 CPU each on this machine, on 127.0.0.1 only; this process is the driver."""
    ray = pytest.importorskip("ray")  # the test extra installs it: CI runs the real engine
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "node_ip_address": LOOPBACK})
    try:  # a node that fails to start must not leave the head's processes behind
        cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, _node_ip_address=LOOPBACK)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_ids():
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


@pytest.mark.ray
@pytest.mark.slow  # the cluster takes ~10 s to start
def test_the_test_cluster_listens_on_the_loopback_only(cluster):
    import ray

    assert cluster.address.startswith(f"{LOOPBACK}:")
    assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {LOOPBACK}


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_end_to_end_on_two_nodes(cluster, tmp_path):
    spec_path = write_spec(tmp_path, """num_samples: 2
max_concurrent: 2
seed: 3
parameters:
  optim.learning_rate: [1.0e-3, 3.0e-3]
  model.reg: {loguniform: [1.0e-5, 1.0e-2]}
""")
    trials = expand_trials(load_spec(spec_path))
    out = tmp_path / "out"
    # the picture only where matplotlib is installed: the sweep itself must not need it
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    result = sweep(spec_path, "--out", out, *(["--plot"] if has_matplotlib else []))
    assert result.exit_code == 0, result.output

    found = summaries(out)
    assert sorted(found) == [t.name for t in trials]
    for t in trials:
        s = found[t.name]
        assert s["status"] == "completed" and epochs_in(out / t.name) == [1, 2, 3, 4]
        assert s["overrides"] == t.overrides and s["blas_threads"] == 1
        assert read_run_config(out / t.name).to_dict() == t.config.to_dict()
        assert s["node"] in node_ids() and s["node_ip"]
        assert not (out / t.name / "state.npz").exists()
    # two trials at once, one CPU per node: they ran on both nodes
    assert {s["node"] for s in found.values()} == node_ids() and len(node_ids()) == 2
    assert (out / ".ray" / "tune").is_dir()  # Ray's files stay out of the run directories
    assert sorted(p.name for p in (out / trials[0].name).iterdir()) == [
        "batch_losses.npy", "config.yaml", "metrics.jsonl", "model.npz", "summary.json"]

    # the table of `csnets summarize`, best validation accuracy first, then best.yaml
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    rows = [line.split()[0] for line in lines[header + 1:header + 5]]
    vals = [found[r]["val_accuracy"] for r in rows]
    assert sorted(rows) == [t.name for t in trials] and vals == sorted(vals, reverse=True)
    best = max(trials, key=lambda t: (found[t.name]["val_accuracy"], -t.index))
    assert load_config(out / "best.yaml").to_dict() == best.config.to_dict()
    assert f"train it: csnets train --config {out / 'best.yaml'}" in result.output
    assert (out / "sweep_parameters.png").exists() == has_matplotlib
    if has_matplotlib:
        assert (out / "sweep_parameters.png").stat().st_size > 10_000

    # a trial is `csnets train`: best.yaml trains to the very same parameters
    assert_same_params(train_alone(load_config(out / "best.yaml").to_dict(), tmp_path / "alone"),
                       params_of(out / best.name))
    # and evaluate reads its run directory unchanged
    evaluated = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(out / best.name), "--split", "val", "--json"])
    assert json.loads(evaluated.output)["accuracy"] == found[best.name]["val_accuracy"]


@pytest.mark.ray
@pytest.mark.slow
def test_asha_stops_the_trials_that_fall_behind(cluster, tmp_path):
    # One trial at a time, in order: the good learning rate reaches each rung first; the
    # others barely learn and fall below the rung's cutoff. trial-003's folder is taken
    # by a file, so that trial fails; the sweep goes on and exits 1.
    spec_path = write_spec(tmp_path, """max_concurrent: 1
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
parameters:
  optim.learning_rate: [1.0e-3, 1.0e-8, 1.0e-9, 1.0e-3]
""")
    out = tmp_path / "out"
    out.mkdir()
    (out / "trial-003").write_text("not a run directory")
    result = sweep(spec_path, "--out", out)
    assert result.exit_code == 1, result.output
    assert "trial-003 failed: ConfigError: --out " in result.output and "exists and is not a directory" in result.output
    assert result.output.strip().splitlines()[-1] == "error: 1 of 4 trials failed"

    found = summaries(out)
    assert found["trial-000"]["status"] == "completed" and epochs_in(out / "trial-000") == [1, 2, 3, 4]
    assert "finished after the sweep" not in result.output  # each stopped trial was finished while it went on
    stops = json.loads((out / ".ray" / "stops.json").read_text())
    assert set(stops) == {"trial-001", "trial-002"}
    assert stops["trial-001"]["epoch"] == 1  # the first rung: below the good trial
    for name in ("trial-001", "trial-002"):
        s = found[name]
        assert s["status"] == "stopped" and s["stopped_at_epoch"] == s["epochs"] == stops[name]["epoch"] < 4
        assert epochs_in(out / name) == list(range(1, s["epochs"] + 1))
        assert not (out / name / "state.npz").exists()
        # model.npz holds the best parameters so far: evaluate gives the summary's accuracy
        evaluated = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(out / name), "--split", "val", "--json"])
        assert json.loads(evaluated.output)["accuracy"] == s["val_accuracy"]
        assert s["node"] in node_ids()
        assert f"{name}: stopped by ASHA after epoch {s['epochs']}" in result.output
    assert "stopped" in result.output.split("run ")[1]  # the table shows them as such


def start_sweep(spec_path, out, address):
    return subprocess.Popen([sys.executable, "-m", "cs_nets", "sweep", str(spec_path), "--out", str(out),
                             "--address", address, *(["--resume"] if (Path(out) / "sweep.json").exists() else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_epochs(run_dir, count, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = Path(run_dir) / "metrics.jsonl"
        if path.is_file() and len(path.read_text().splitlines()) >= count and (Path(run_dir) / "state.npz").is_file():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{run_dir} did not reach epoch {count}")


@pytest.mark.ray
@pytest.mark.slow
def test_ctrl_c_then_a_killed_sweep_then_resume(cluster, tmp_path, reap):
    spec_path = write_spec(tmp_path, """max_concurrent: 1
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
parameters:
  train.num_epochs: [3, 60, 60]
""")
    trials = expand_trials(load_spec(spec_path))
    out = tmp_path / "out"

    # 1. Ctrl-C while trial-001 trains: the sweep stops cleanly, exit 130
    proc = reap(start_sweep(spec_path, out, cluster.address))
    wait_for_epochs(out / "trial-001", 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"interrupted; continue with: csnets sweep {spec_path} --out {out} --resume" in stderr
    first = summaries(out)
    assert first["trial-000"]["status"] == "completed"
    assert first["trial-001"]["status"] == "interrupted" and 2 <= first["trial-001"]["epochs"] < 60
    assert (out / "trial-001" / "state.npz").is_file() and (out / "trial-001" / "model.npz").is_file()
    assert "trial-002" not in first
    done = (out / "trial-000" / "summary.json").read_bytes(), (out / "trial-000" / "summary.json").stat().st_mtime_ns

    # 2. resumed, then killed (SIGKILL) while trial-002 trains
    proc = reap(start_sweep(spec_path, out, cluster.address))
    wait_for_epochs(out / "trial-002", 2, proc)
    running = summaries(out)["trial-002"]
    proc.kill()
    proc.communicate(timeout=60)
    wait_gone(running["pid"])  # Ray ends the trials of a driver that died
    assert summaries(out)["trial-001"]["status"] == "completed"  # continued from its saved epoch
    assert summaries(out)["trial-002"]["status"] == "running"

    # 3. resumed to the end: finished trials are not run again, trial-002 continues
    result = sweep(spec_path, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    final = summaries(out)
    assert [final[t.name]["status"] for t in trials] == ["completed"] * 3
    assert ((out / "trial-000" / "summary.json").read_bytes(),
            (out / "trial-000" / "summary.json").stat().st_mtime_ns) == done
    for t in trials[1:]:
        assert epochs_in(out / t.name) == list(range(1, 61))  # each epoch once
        # interrupted, killed and continued: the parameters of a run never stopped
        assert_same_params(params_of(out / t.name), train_alone(t.config.to_dict(), tmp_path / f"alone-{t.name}"))


@pytest.mark.ray
@pytest.mark.slow
def test_a_trial_killed_before_its_config_was_written_starts_afresh_on_resume(cluster, tmp_path, reap):
    from test_sweep import make_killed_before_config  # inside: a module-level import would collect its tests here

    spec_path = write_spec(tmp_path, "max_concurrent: 1\nparameters:\n  train.num_epochs: [60]\n")
    out = tmp_path / "out"
    proc = reap(start_sweep(spec_path, out, cluster.address))
    wait_for_epochs(out / "trial-000", 1, proc)
    running = summaries(out)["trial-000"]
    proc.kill()  # the driver dies, and Ray ends its trial
    proc.communicate(timeout=60)
    wait_gone(running["pid"])
    make_killed_before_config(out / "trial-000")  # as if that came between its summary.json and config.yaml
    result = sweep(spec_path, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert summaries(out)["trial-000"]["status"] == "completed" and (out / "trial-000" / "config.yaml").is_file()
    assert epochs_in(out / "trial-000") == list(range(1, 61))


@pytest.mark.ray
@pytest.mark.slow
def test_shared_data_that_fails_is_one_line_naming_its_trials_before_tune_starts(cluster, tmp_path,
                                                                                 good_and_incomplete_cifar):
    good, bad = good_and_incomplete_cifar
    spec_path = write_spec(tmp_path, f"parameters:\n  data.dir: [{good}, {bad}]\n  model.reg: [0, 1]\n")
    out = tmp_path / "out"
    result = sweep(spec_path, "--set", "data.source=cifar10", "--set", "data.num_val=50", "--out", out)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors == [result.output.splitlines()[-1]]
    assert errors[0].startswith(f"error: the data of trial-002 and trial-003 (data.dir={bad} from {spec_path}:3): "
                                f"{bad / 'cifar-10-batches-py'} is incomplete: test_batch missing: put the file back")
    assert not (out / "sweep.json").exists() and not list(out.glob("trial-*"))  # Tune never started


@pytest.mark.ray
@pytest.mark.slow
def test_a_second_sweep_into_a_running_sweeps_folder_is_refused_at_once(cluster, tmp_path, reap):
    """Two real sweeps, one folder: the second (new or --resume, a process of its own or in this one) exits 2 at
    once and changes nothing; the first goes on until it is stopped."""
    spec_path = write_spec(tmp_path, "max_concurrent: 1\nparameters:\n  train.num_epochs: [200, 200]\n")
    out = tmp_path / "out"
    proc = reap(start_sweep(spec_path, out, cluster.address))
    wait_for_epochs(out / "trial-000", 1, proc)
    sweep_json = (out / "sweep.json").read_bytes()
    trial_dirs = sorted(p.name for p in out.glob("trial-*"))
    refused = [f"error: --out {out}: another csnets sweep is running into it; wait for it or stop it"]
    for how in ("a process", "in this process", "in this process, --resume"):
        started = time.monotonic()
        if how == "a process":
            second = subprocess.run([sys.executable, "-m", "cs_nets", "sweep", str(spec_path), "--out", str(out),
                                     "--address", cluster.address], capture_output=True, text=True, timeout=120)
            code, lines = second.returncode, (second.stdout + second.stderr).splitlines()
        else:
            result = sweep(spec_path, "--out", out, *(["--resume"] if "resume" in how else []))
            code, lines = result.exit_code, result.output.splitlines()
        assert (code, lines) == (2, refused), how
        assert time.monotonic() - started < 60, how  # the lock is tried, never waited for
        assert (out / "sweep.json").read_bytes() == sweep_json
        assert sorted(p.name for p in out.glob("trial-*")) == trial_dirs
        assert proc.poll() is None  # the first sweep goes on
    running = summaries(out)["trial-000"]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    wait_gone(running["pid"])  # its trial went with it
    assert (out / "sweep.json").read_bytes() == sweep_json


@pytest.mark.ray
def test_a_new_sweep_refuses_a_folder_that_holds_one(tmp_path):
    pytest.importorskip("ray")  # checked before Ray is even started
    spec_path = write_spec(tmp_path, "parameters:\n  model.reg: [0]\n")
    out = tmp_path / "out"
    (out / ".ray").mkdir(parents=True)
    (out / "sweep.json").write_text("{}")
    result = sweep(spec_path, "--out", out)
    assert result.exit_code == 2 and "already holds a sweep: continue it with --resume" in result.output
    result = sweep(spec_path, "--out", tmp_path / "none", "--resume")
    assert result.exit_code == 2 and "holds no sweep" in result.output



@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_expand_and_say_how_to_run_them(path):
    trials = expand_trials(load_spec(path))
    assert len(trials) >= 4 and len({json.dumps(t.params) for t in trials}) == len(trials)
    assert path.read_text().startswith("#") and f"csnets sweep configs/sweeps/{path.name}" in path.read_text()


# --------------------------------------------------------------------------- reaching Ray, losing a node


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # the server's own lines would mix with the command's output
        pass


@pytest.fixture
def web_server():
    """A plain HTTP server on 127.0.0.1: something listens there, but it is not Ray."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{LOOPBACK}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server():
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog) and never says a word."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen(8)
    yield f"{LOOPBACK}:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.ray
def test_an_address_where_no_ray_answers_is_one_line(tmp_path, web_server, silent_server):
    pytest.importorskip("ray")
    spec = write_spec(tmp_path, "parameters:\n  model.reg: [0]\n")
    cases = {
        f"{LOOPBACK}:1": f"error: cannot connect to Ray at {LOOPBACK}:1: Connection refused",
        web_server: f"error: cannot connect to Ray at {web_server}: something listens there but it is not Ray "
                    f"(no gRPC answer); give the head node's GCS address, e.g. HEAD:6379",
        silent_server: f"error: cannot connect to Ray at {silent_server}: nothing answered within 1 s "
                       f"(--connect-timeout)",
        "nonsense": "error: --address nonsense: expected HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379)",
    }
    for address, message in cases.items():
        out = tmp_path / f"out-{address.replace(':', '-')}"
        result = sweep(spec, "--address", address, "--connect-timeout", "1", "--out", out)
        assert result.exit_code in (1, 2), result.output
        assert result.output.strip().splitlines() == [message]
        assert not out.exists()  # refused before the sweep folder is made
    result = sweep(spec, "--address", f"{LOOPBACK}:1", "--backend", "local")
    assert result.exit_code == 2 and "--address is a Ray cluster: it needs --backend ray" in result.output


OUR_LINES = ("sweep: ", "ray: ", "data: ", "trial-", "run ", "best", "train it: ", "error: ", "interrupted")


@pytest.mark.ray
@pytest.mark.slow
def test_a_lost_node_is_one_line_per_trial_and_summaries_table_and_exit_agree(cluster, tmp_path):
    """A node that dies under its trial: Tune reports the trial's error; the run directory says failed."""
    doomed = cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK, resources={"doomed": 1})
    cluster.wait_for_nodes()
    doomed_id = next(n["NodeID"] for n in __import__("ray").nodes() if n["Alive"] and "doomed" in n["Resources"])
    spec_path = write_spec(tmp_path, "max_concurrent: 3\nparameters:\n  train.num_epochs: [400, 400, 400]\n")
    out = tmp_path / "out"
    proc = start_sweep(spec_path, out, cluster.address)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            found = summaries(out)
            if len(found) == 3 and all(s["status"] == "running" and s.get("epochs", 0) >= 1 for s in found.values()):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        lost = sorted(name for name, s in summaries(out).items() if s["node"] == doomed_id)
        assert len(lost) == 1  # three trials, three nodes of one CPU: one trial on each
        cluster.remove_node(doomed)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    errors = stderr.strip().splitlines()
    assert errors[-1] == "error: 1 of 3 trials failed"
    failed_lines = [line for line in errors if line.startswith(f"{lost[0]} ") and "fail" in line]
    assert len(failed_lines) == 1 and failed_lines[0].startswith(f"{lost[0]} failed: ")
    final = summaries(out)
    assert final[lost[0]]["status"] == "failed" and final[lost[0]]["error"] in failed_lines[0]
    assert {name: s["status"] for name, s in final.items() if name != lost[0]} == dict.fromkeys(
        set(final) - {lost[0]}, "completed")
    rows = {line.split()[0]: line.split()[1] for line in stdout.splitlines() if line.startswith("trial-")}
    assert rows == {name: s["status"] for name, s in final.items()}
    # Ray's own messages went to DIR/ray.log, not to the terminal
    assert all(line.startswith(OUR_LINES) for line in errors), errors
    assert "Traceback" in (out / "ray.log").read_text()  # Tune's report of the lost trial
