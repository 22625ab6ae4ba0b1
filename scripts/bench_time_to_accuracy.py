#!/usr/bin/env python
"""Time to accuracy: the wall time of ``csnets train`` from start to its `test accuracy` line,
against the same recipe in PyTorch, both run by this script.

    python scripts/bench_time_to_accuracy.py --data-dir /tmp/cifar-dev
    python scripts/bench_time_to_accuracy.py --data-dir D --set train.num_epochs=2 --repeats 2

Run it with a Python that has both cs_nets and torch (e.g. a separate venv with
``pip install torch`` and ``pip install -e .``); PyTorch is never a dependency of
cs_nets. Each side is a fresh subprocess, timed from its launch to the line
``test accuracy: 0.xxxx`` on its stdout; with --repeats the two alternate (ours,
theirs, ours, ...) so load from other processes hits both alike.

Ours: ``csnets train --config CONFIG --data-dir D --out <tmp>/ours-<i>`` (the command a
user runs: reading the data, normalizing, training with a checkpoint per epoch,
validation every epoch, testing the best epoch's weights).

Theirs (``--torch-worker``, the same recipe): the same data, split and normalization
(cs_nets.data.pipeline.prepare_dataset, so loading costs both sides alike); the same
initial weights (our model built from the config's seed, copied into nn.Linear); the
same epochs, batch size, learning rate per epoch (cs_nets.nn.optim.learning_rate:
the config's schedule, e.g. cosine), momentum / Nesterov (torch.optim.SGD), L2 on the
weights only (weight_decay 2·reg: our reg·ΣW² has gradient 2·reg·W), hflip (a random
half of each batch mirrored), a fresh random order each epoch; after every epoch the
accuracy on the same 1,000 training rows and on the validation split, the best epoch's
weights kept and scored once on the test split. Both sides use the threads of NumPy's
BLAS (torch.set_num_threads). Only the two_layer / linear models of a raw-pixel config
are mirrored.

Printed: the CPU model, BLAS, threads, the load average before and after, each run's
seconds to the test accuracy and the accuracy, and the medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "two_layer.yaml"
PREFIX = "test accuracy:"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def timed(command, log_path) -> tuple[float, float | None, int]:
    """Seconds from launching `command` to its `test accuracy:` line, the accuracy, the exit code.

    Every line of its output goes to log_path."""
    start = time.perf_counter()
    seconds, accuracy = float("nan"), None
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each line as printed, not when a pipe's buffer fills
    with open(log_path, "w") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, bufsize=1, env=env) as proc:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith(PREFIX) and accuracy is None:
                seconds = time.perf_counter() - start
                accuracy = float(line[len(PREFIX):])
        code = proc.wait()
    return seconds, accuracy, code


# ---------------------------------------------------------------------- the PyTorch side


def torch_worker(args) -> int:
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    from cs_nets.config import load_config
    from cs_nets.data.pipeline import prepare_dataset
    from cs_nets.nn.optim import learning_rate
    from cs_nets.runs.task import build_model_for
    from cs_nets.training.trainer import train_eval_rows

    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    torch.set_num_threads(max(1, int(blas[0].get("num_threads") or 1)) if blas else os.cpu_count() or 1)
    config = load_config(args.config, args.set)
    if config.features or config.model.type not in ("two_layer", "linear"):
        raise SystemExit("--torch-worker mirrors two_layer / linear models on raw pixels only")
    data = prepare_dataset(config, args.data_dir, progress=False)
    ours = build_model_for(config, data)  # the initial weights csnets train starts from
    nn = torch.nn
    if config.model.type == "two_layer":
        if config.model.activation != "relu" or config.model.loss != "softmax":
            raise SystemExit("--torch-worker mirrors relu + softmax only")
        layers = [nn.Linear(ours.input_dim, ours.hidden_dim), nn.ReLU(), nn.Linear(ours.hidden_dim, ours.num_classes)]
        names = [("W1", "b1"), None, ("W2", "b2")]
    else:
        layers, names = [nn.Linear(ours.input_dim, ours.num_classes)], [("W", "b")]
    with torch.no_grad():
        for layer, pair in zip(layers, names):
            if pair:  # torch keeps (out, in); ours is (in, out)
                layer.weight.copy_(torch.from_numpy(ours.params[pair[0]].T.copy()))
                layer.bias.copy_(torch.from_numpy(ours.params[pair[1]]))
    net = nn.Sequential(*layers)
    weights = [layer.weight for layer, pair in zip(layers, names) if pair]
    biases = [layer.bias for layer, pair in zip(layers, names) if pair]
    reg, optim, train = config.model.reg, config.optim, config.train
    opt = torch.optim.SGD([{"params": weights, "weight_decay": 2 * reg}, {"params": biases, "weight_decay": 0.0}],
                          lr=optim.learning_rate, momentum=optim.momentum, nesterov=optim.nesterov)
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    X_val, y_val = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    n, batch = len(X), min(train.batch_size, len(X))
    eval_rows = torch.from_numpy(train_eval_rows(n, train.train_eval_size, np.random.default_rng(config.seed)))
    X_eval, y_eval = X[eval_rows], y[eval_rows]
    gen = torch.Generator().manual_seed(config.seed)

    def accuracy(inputs, labels):
        with torch.no_grad():
            return (net(inputs).argmax(dim=1) == labels).double().mean().item()

    best, best_state = -1.0, None
    torch.set_flush_denormal(True)
    for epoch in range(train.num_epochs):
        lr = learning_rate(optim.learning_rate, optim.schedule, epoch, train.num_epochs, optim.lr_decay)
        for group in opt.param_groups:
            group["lr"] = lr
        start = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        for b in range(0, n, batch):
            idx = order[b:b + batch]
            xb, yb = X[idx], y[idx]  # a gathered copy, as our trainer makes
            if train.hflip:
                images = xb.view(len(idx), 3, 32, 32)
                flip = torch.rand(len(idx), generator=gen) < 0.5
                images[flip] = images[flip].flip(-1)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        val = accuracy(X_val, y_val)
        train_acc = accuracy(X_eval, y_eval)
        if val > best:
            best, best_state = val, {k: v.clone() for k, v in net.state_dict().items()}
        if not args.quiet:
            print(f"epoch {epoch + 1:>3}/{train.num_epochs}  loss {loss.item():.4f}  train {train_acc:.4f}  "
                  f"val {val:.4f}  lr {lr:.2e}  {seconds:.1f}s", flush=True)
    torch.set_flush_denormal(False)
    net.load_state_dict(best_state)
    test = torch.from_numpy(np.ascontiguousarray(data.inputs.transform(data.test_rows)))
    print(f"{PREFIX} {accuracy(test, torch.from_numpy(data.y_test)):.4f}", flush=True)
    return 0


# ---------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="data folder (holds cifar-10-batches-py/)")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config override for both sides (repeatable)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, alternated")
    parser.add_argument("--csnets", default=str(Path(sys.executable).with_name("csnets")),
                        help="the csnets command (default: the one beside this Python)")
    parser.add_argument("--work-dir", default=None, help="run folders and logs (default: a new temporary folder)")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_worker:
        return torch_worker(args)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="csnets-tta-"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = [a for s in args.set for a in ("--set", s)]
    import numpy as np  # noqa: F401  (loads NumPy's BLAS so threadpoolctl can report it)
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    print(f"cpu: {cpu_model()}; BLAS: " + ", ".join(f"{b.get('internal_api')} {b.get('version')} "
                                                    f"{b.get('architecture')} x{b.get('num_threads')}" for b in blas))
    print(f"config: {args.config} {' '.join(args.set)}; data: {args.data_dir}; logs in {work}")
    print(f"load average before: {load_text()}")
    results: dict[str, list[tuple[float, float | None]]] = {"cs_nets": [], "pytorch": []}
    for i in range(args.repeats):
        commands = {
            "cs_nets": [args.csnets, "train", "--config", args.config, "--data-dir", args.data_dir,
                        "--out", str(work / f"ours-{i}"), *overrides],
            "pytorch": [sys.executable, __file__, "--torch-worker", "--config", args.config,
                        "--data-dir", args.data_dir, *overrides],
        }
        for side, command in commands.items():
            seconds, accuracy, code = timed(command, work / f"{side}-{i}.log")
            results[side].append((seconds, accuracy))
            shown = "no test accuracy line" if accuracy is None else f"test accuracy {accuracy:.4f}"
            print(f"  run {i + 1} {side:8s}: {seconds:7.1f} s to {shown} (exit {code}); load {load_text()}",
                  flush=True)
    print(f"load average after: {load_text()}")
    medians = {side: statistics.median(s for s, _ in runs) for side, runs in results.items()}
    for side, runs in results.items():
        accs = [a for _, a in runs if a is not None]
        print(f"{side:8s}: median {medians[side]:.1f} s, test accuracy {', '.join(f'{a:.4f}' for a in accs)}")
    print(f"ratio cs_nets / pytorch (time to accuracy): {medians['cs_nets'] / medians['pytorch']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
