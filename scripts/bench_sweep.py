"""Measure `csnets sweep` on Ray: start-up overhead, memory per trial, ASHA against no scheduler.

    python scripts/bench_sweep.py startup
    python scripts/bench_sweep.py memory --data-dir D --set model.hidden_dims=[500]
    python scripts/bench_sweep.py compare configs/sweeps/two_layer.yaml --out DIR --data-dir D \
        --set model.hidden_dims=[500] --set train.num_epochs=10
    python scripts/bench_sweep.py replay DIR/none

startup: how long Ray takes to start on this machine, to run its first and second
    trial process, and to shut down (the fixed cost of a sweep on Ray).
memory: one trial (cs_nets.runs.task.run, as a sweep trial runs it) in a fresh Ray worker,
    once reading the dataset from the object store and once loading it itself; peak
    RSS of the worker (shared pages included) and, after its epochs, its private (USS)
    and proportional (PSS) memory.
compare: `csnets sweep SPEC` as it is (ASHA) and the same trials with
    `scheduler: {type: none}`, one after the other: wall time of each command, best
    validation accuracy, trials stopped, epochs trained, the best trial's test accuracy.
replay: ASHA (Ray's own rung bookkeeping) replayed on the validation curves of a sweep
    whose trials all ran to the end (or --trials N drawn from them with replacement, for
    a bigger sweep of the same kind), for several grace periods and reduction factors,
    over random orders and speeds of the trials: the share of epochs trained, the wall
    time against no scheduler (with a start-up cost per trial, in epochs), and how
    often the best validation accuracy found is more than 0.5 points below the best.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

MB = 2**20


def startup(args) -> None:
    import ray

    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=2)
    up = time.perf_counter() - start

    @ray.remote(num_cpus=1, max_calls=1)
    def pid():
        return os.getpid()

    start = time.perf_counter()
    ray.get(pid.remote())
    first = time.perf_counter() - start
    start = time.perf_counter()
    ray.get(pid.remote())
    second = time.perf_counter() - start
    start = time.perf_counter()
    ray.shutdown()
    down = time.perf_counter() - start
    print(f"ray.init (local, 2 CPUs): {up:.2f} s; first task in a new worker: {first:.2f} s; "
          f"another new worker: {second:.2f} s; ray.shutdown: {down:.2f} s")


def memory(args) -> None:
    import ray

    from cs_nets.config import load_config
    from cs_nets.data.pipeline import prepare_dataset

    config = load_config(args.config, ["train.num_epochs=1", *args.set])
    ray.init(address="local", include_dashboard=False, log_to_driver=False, num_cpus=2)

    @ray.remote(num_cpus=1, max_calls=1)  # max_calls=1: a fresh worker process for each trial
    def trial(config_dict, shared, data_dir, out):
        import psutil

        from cs_nets.config import config_from_dict
        from cs_nets.runs.task import run

        dataset = ray.get(shared[0]) if shared else None  # the ref inside a list is not resolved by Ray
        during = []  # after each epoch, while the data and the model are alive

        def sample(metrics):
            info = psutil.Process().memory_full_info()
            during.append((info.uss, info.pss))

        run(config_from_dict(config_dict), out, dataset=dataset, data_dir=data_dir, on_epoch=sample)
        return {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "uss": max(u for u, _ in during), "pss": max(p for _, p in during)}

    ref = ray.put(prepare_dataset(config, args.data_dir, progress=False))
    out = Path(args.out or tempfile.mkdtemp(prefix="cs_nets_bench_sweep_memory_"))  # never inside the checkout
    print(f"run directories in {out}")
    for label, shared in (("shared through the object store", [ref]), ("loaded by the trial", None)):
        m = ray.get(trial.remote(config.to_dict(), shared, args.data_dir, str(out / label.split()[0])))
        print(f"{label:<32} peak RSS {m['peak_rss'] / MB:7.0f} MB   after an epoch: private (USS) "
              f"{m['uss'] / MB:6.0f} MB, PSS {m['pss'] / MB:6.0f} MB")
    ray.shutdown()


def compare(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = Path(args.spec)
    fifo = yaml.safe_load(spec.read_text())
    fifo["base"] = str((spec.parent / fifo["base"]).resolve())
    fifo["scheduler"] = {"type": "none"}
    fifo_spec = out / f"{spec.stem}-none.yaml"
    fifo_spec.write_text(yaml.safe_dump(fifo, sort_keys=False))
    extra = [w for s in args.set for w in ("--set", s)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    rows = []
    for label, path, folder in (("asha", spec, out / "asha"), ("none", fifo_spec, out / "none")):
        command = ["csnets", "sweep", str(path), "--out", str(folder), *extra]
        print(f"$ {shlex.join(command)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cs_nets", *command[1:]], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        (out / f"{label}.log").write_text(proc.stdout + proc.stderr)
        print(proc.stdout, flush=True)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
        summaries = [json.loads(p.read_text()) for p in sorted(folder.glob("trial-*/summary.json"))]
        best = max((s for s in summaries if s["status"] in ("completed", "early_stopped", "stopped")),
                   key=lambda s: s["val_accuracy"])
        rows.append((label, seconds, best, sum(s["status"] == "stopped" for s in summaries),
                     sum(s["epochs"] for s in summaries), len(summaries)))
    print(f"{'scheduler':<10} {'wall s':>7} {'trials':>6} {'stopped':>7} {'epochs':>6} {'best val':>8} "
          f"{'best trial':>10} {'its test':>8}")
    for label, seconds, best, stopped, epochs, count in rows:
        print(f"{label:<10} {seconds:7.1f} {count:6d} {stopped:7d} {epochs:6d} {best['val_accuracy']:8.4f} "
              f"{best['trial']:>10} {best['test_accuracy']:8.4f}")
    print(f"ASHA / none wall time: {rows[0][1] / rows[1][1]:.2f}; best val difference "
          f"{100 * (rows[0][2]['val_accuracy'] - rows[1][2]['val_accuracy']):+.1f} points")


def replay(args) -> None:
    import heapq

    import numpy as np
    from ray.tune.schedulers.async_hyperband import _Bracket  # Ray's ASHA rungs (a private class)

    runs = sorted(Path(args.sweep).glob("trial-*/metrics.jsonl"))
    curves = [[json.loads(line)["val_accuracy"] for line in p.read_text().splitlines()] for p in runs]
    if args.trials:  # a bigger sweep of the same kind: curves drawn with replacement
        draw = np.random.default_rng(1).choice(len(curves), args.trials)
        curves = [curves[i] for i in draw]
    epochs = len(curves[0])
    if any(len(c) != epochs for c in curves):
        sys.exit("replay needs a sweep whose trials all ran the same number of epochs (scheduler: none)")
    best_all = max(max(c) for c in curves)

    class Trial:
        def __init__(self, i):
            self.trial_id = i

    def simulate(order, speed, grace, rf):
        """Trials start in `order` on args.slots slots; (epochs trained, wall time, best val seen)."""
        rungs = _Bracket(grace, epochs + 1, rf, 0) if grace else None
        queue, events, trained, best, end = list(order), [], 0, 0.0, 0.0
        for _ in range(args.slots):
            if queue:
                i = queue.pop(0)
                heapq.heappush(events, (args.startup + speed[i], i, 1))
        while events:
            t, i, e = heapq.heappop(events)
            trained += 1
            best = max(best, curves[i][e - 1])
            stop = rungs is not None and rungs.on_result(Trial(i), e, curves[i][e - 1]) == "STOP"
            if stop or e == epochs:
                end = max(end, t)
                if queue:
                    j = queue.pop(0)
                    heapq.heappush(events, (t + args.startup + speed[j], j, 1))
            else:
                heapq.heappush(events, (t + speed[i], i, e + 1))
        return trained, end, best

    rng = np.random.default_rng(0)
    results = {setting: [] for setting in ((g, r) for g in (1, 2, 3) for r in (2, 3, 4))}
    for _ in range(args.repeats):
        order, speed = rng.permutation(len(curves)), rng.uniform(0.8, 1.2, len(curves))
        _, fifo_end, _ = simulate(order, speed, 0, 0)
        for (grace, rf), rows in results.items():
            trained, end, best = simulate(order, speed, grace, rf)
            rows.append((trained / (epochs * len(curves)), end / fifo_end, best_all - best))
    print(f"{len(curves)} trials x {epochs} epochs, best val {best_all:.4f}; {args.repeats} random orders, "
          f"{args.slots} at a time, start-up {args.startup} epoch(s) per trial")
    print(f"{'grace':>5} {'rf':>3} {'epochs':>7} {'wall':>6} {'wall 10-90%':>12} {'best > 0.5 pt lower':>20}")
    for (grace, rf), rows in results.items():
        v = np.array(rows)
        print(f"{grace:>5} {rf:>3} {v[:, 0].mean():7.2f} {v[:, 1].mean():6.2f} "
              f"{np.percentile(v[:, 1], 10):5.2f}-{np.percentile(v[:, 1], 90):4.2f} {np.mean(v[:, 2] > 0.005):19.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("startup")
    m = sub.add_parser("memory")
    m.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "two_layer.yaml"))
    m.add_argument("--data-dir")
    m.add_argument("--set", action="append", default=[])
    m.add_argument("--out")
    c = sub.add_parser("compare")
    c.add_argument("spec")
    c.add_argument("--out", required=True)
    c.add_argument("--data-dir")
    c.add_argument("--set", action="append", default=[])
    r = sub.add_parser("replay")
    r.add_argument("sweep", help="a sweep folder whose trials all ran to the end")
    r.add_argument("--slots", type=int, default=2, help="trials at once")
    r.add_argument("--startup", type=float, default=1.5, help="start-up cost of a trial, in epochs")
    r.add_argument("--repeats", type=int, default=300)
    r.add_argument("--trials", type=int, help="replay this many trials, curves drawn with replacement")
    args = parser.parse_args()
    {"startup": startup, "memory": memory, "compare": compare, "replay": replay}[args.what](args)


if __name__ == "__main__":
    main()
