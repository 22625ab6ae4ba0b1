#!/usr/bin/env python
"""Time training epochs on every update path against PyTorch, plus loading and scoring.

    python scripts/bench_train.py                          # synthetic: 49,000 x 3072 float32
    python scripts/bench_train.py --data-dir ~/cifar       # the real CIFAR-10 (train minus 1,000 val)
    python scripts/bench_train.py --rows sgd,nesterov+l2 --epochs 7 --json /tmp/bench.json
    python scripts/bench_train.py --profile nesterov+l2    # cProfile of one epoch of a row, by tottime

Rows (--rows, default all): the two-layer net 3072→500→10 (ReLU, Softmax, batch 200,
lr 1e-3) with each update rule, sgd, momentum and nesterov (μ 0.9), each without and
with L2 (+l2: reg 1e-3), and with hflip; the whole computation of
configs/two_layer.yaml (hidden 1000, momentum, L2, hflip, cosine schedule); and the
linear Softmax classifier. Ours is ``cs_nets.training.trainer.fit``, the code path
``csnets train`` runs.

Fairness. When PyTorch can be imported, each row also trains the same computation in
PyTorch, in the same process, alternating epoch by epoch (ours, theirs, ours...) so
that load from other processes hits both alike: same weights (ours after the warm-up
epoch), batch size, learning rate (per epoch, for schedules), update rule (torch.optim.SGD
with the same momentum and Nesterov form), L2 on the weights only (weight_decay 2·reg
in a parameter group without the biases: our reg·ΣW² has gradient 2·reg·W; the
reported loss adds reg·ΣW² on both sides, one dot product per weight matrix) and hflip
(a random half of each batch mirrored). Both sides use the same number of threads
(torch.set_num_threads = the threads of NumPy's OpenBLAS), both epochs include the
shuffle (ours: the trainer's ``seconds`` plus the time of the same rng.permutation),
and both flush subnormal floats (PyTorch: torch.set_flush_denormal(True) during its
epochs; ours: the softmax gradient is flushed in software, cs_nets.nn.losses). PyTorch is
never a dependency of cs_nets: without it only our numbers are printed.

Reported per row: the median seconds of the counted epochs (the first epoch of each
side is a warm-up), the ratio ours / PyTorch, and the last epoch's mean loss of each
(close, since the computations are the same); then the machine's sgemm rate at the
two dominant shapes (forward X·W, backward Xᵀ·dZ) for NumPy and PyTorch, the time to
score 10,000 images, to load the data, peak RSS and the load average before and after.
--profile prints cProfile's table instead. CS_NETS_BLAS=numpy times the NumPy-only
fallback of cs_nets.training._blas (what runs where NumPy's BLAS is not an OpenBLAS).

Threads: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set before Python starts limit NumPy's
BLAS, and PyTorch follows it here. Other jobs on the machine slow multi-threaded
products badly: check the printed load; ratios from one run are more robust than times.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.util
import io
import json
import os
import platform
import pstats
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cs_nets.config import OptimConfig, TrainConfig, load_config
from cs_nets.nn.models import build_model
from cs_nets.nn.optim import learning_rate
from cs_nets.training import _blas as blas

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_time_to_accuracy import cpu_model  # noqa: E402  (a sibling script: the CPU model, read once)

try:
    from cs_nets.training.trainer import fit
except ImportError:  # an older checkout (PYTHONPATH=OLD, to time "before"): train(), on_epoch(metrics)
    from cs_nets.training.trainer import train as _old_train

    def fit(*args, on_epoch=None, **kwargs):
        return _old_train(*args, on_epoch=on_epoch and (lambda metrics: on_epoch(metrics, None)), **kwargs)

NUM_CLASSES = 10
DIM = 3 * 32 * 32
SYNTHETIC_TRAIN, SYNTHETIC_VAL, SYNTHETIC_TEST = 49_000, 1_000, 10_000
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "two_layer.yaml"


@dataclass
class Row:
    """One workload: the same computation on both sides."""

    name: str
    model: str = "two_layer"  # or "linear"
    hidden: int = 500
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    reg: float = 0.0
    hflip: bool = False
    schedule: str = "constant"
    batch_size: int = 200


def all_rows() -> list[Row]:
    rows = []
    for rule, momentum, nesterov in (("sgd", 0.0, False), ("momentum", 0.9, False), ("nesterov", 0.9, True)):
        rows.append(Row(rule, momentum=momentum, nesterov=nesterov))
        rows.append(Row(f"{rule}+l2", momentum=momentum, nesterov=nesterov, reg=1e-3))
    rows.append(Row("momentum+l2+hflip", reg=1e-3, hflip=True))
    rows.append(Row("nesterov+l2+hflip", nesterov=True, reg=1e-3, hflip=True))
    config = load_config(CONFIG)
    rows.append(Row("two_layer.yaml", hidden=config.model.hidden_dims[0], lr=config.optim.learning_rate,
                    momentum=config.optim.momentum, nesterov=config.optim.nesterov, reg=config.model.reg,
                    hflip=config.train.hflip, schedule=config.optim.schedule, batch_size=config.train.batch_size))
    rows.append(Row("linear momentum", model="linear"))
    rows.append(Row("linear momentum+l2+hflip", model="linear", reg=1e-3, hflip=True))
    return rows


def describe(row: Row) -> str:
    model = f"3072→{row.hidden}→10" if row.model == "two_layer" else "linear"
    rule = "sgd" if row.momentum == 0 else ("nesterov" if row.nesterov else "momentum") + f" {row.momentum:g}"
    extras = [f"reg {row.reg:g}" if row.reg else "no L2", "hflip" if row.hflip else "", row.schedule
              if row.schedule != "constant" else ""]
    return f"{model}, {rule}, lr {row.lr:g}, " + ", ".join(e for e in extras if e)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def blas_libraries() -> list[dict]:
    from threadpoolctl import threadpool_info

    return [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]


def blas_threads() -> int:
    """Threads of NumPy's BLAS (threadpoolctl, called before PyTorch loads its own), 0 if unknown."""
    libraries = blas_libraries()
    return int(libraries[0].get("num_threads") or 0) if libraries else 0


# ---------------------------------------------------------------------- data


def load_data(data_dir, dtype="float32"):
    """(arrays dict, phase seconds dict). Real data: all training images but 1,000 for validation."""
    seconds = {}
    if data_dir is None:
        start = time.perf_counter()
        rng = np.random.default_rng(0)

        def rows(n):
            X = rng.standard_normal((n, DIM), dtype=np.float32)
            return X.astype(dtype, copy=False), rng.integers(0, NUM_CLASSES, n)

        X_train, y_train = rows(SYNTHETIC_TRAIN)
        X_val, y_val = rows(SYNTHETIC_VAL)
        X_test, y_test = rows(SYNTHETIC_TEST)
        seconds["make synthetic data"] = time.perf_counter() - start
    else:
        from cs_nets.data.cifar10 import load_cifar10
        from cs_nets.data.preprocess import Normalizer, split_train_val

        start = time.perf_counter()
        raw = load_cifar10(data_dir)
        seconds["read CIFAR-10 files"] = time.perf_counter() - start
        start = time.perf_counter()
        split = split_train_val(raw, num_val=1000)
        norm = Normalizer("mean_std", dtype=dtype).fit(split.X_train)
        X_train, X_val, X_test = (norm.transform(X) for X in (split.X_train, split.X_val, split.X_test))
        y_train, y_val, y_test = split.y_train, split.y_val, split.y_test
        seconds["split + normalize"] = time.perf_counter() - start
    data = dict(X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val, X_test=X_test, y_test=y_test)
    return data, seconds


# ---------------------------------------------------------------------- the machine's sgemm rate


def sgemm_gflops(batch, width, dtype="float32", repeats=40):
    """Median GFLOP/s of NumPy's forward X·W (batch, 3072)·(3072, width) and backward
    Xᵀ·dZ (3072, batch)·(batch, width), X read transposed as in the backward pass."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((batch, DIM)).astype(dtype)
    W = rng.standard_normal((DIM, width)).astype(dtype)
    dZ = rng.standard_normal((batch, width)).astype(dtype)
    Z, dW = np.empty((batch, width), dtype), np.empty((DIM, width), dtype)
    return {"forward": _rate(lambda: np.matmul(X, W, out=Z), batch, width, repeats),
            "backward": _rate(lambda: np.matmul(X.T, dZ, out=dW), batch, width, repeats)}


def torch_mm_gflops(torch, batch, width, repeats=40):
    """The same products in PyTorch, in nn.Linear's layout: X Wᵀ and dZᵀ X (W is (width, 3072))."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(batch, DIM, generator=gen)
    W = torch.randn(width, DIM, generator=gen)
    dZ = torch.randn(batch, width, generator=gen)
    Z, dW = torch.empty(batch, width), torch.empty(width, DIM)
    return {"forward": _rate(lambda: torch.mm(X, W.t(), out=Z), batch, width, repeats),
            "backward": _rate(lambda: torch.mm(dZ.t(), X, out=dW), batch, width, repeats)}


def _rate(fn, batch, width, repeats):
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 2 * batch * DIM * width / statistics.median(times[3:]) / 1e9


# ---------------------------------------------------------------------- PyTorch twin


class TorchTwin:
    """The same model and computation in PyTorch, from our model's weights."""

    def __init__(self, torch, model, data, row: Row):
        self.torch, self.row = torch, row
        nn = torch.nn
        if row.model == "two_layer":
            layers = [nn.Linear(DIM, row.hidden), nn.ReLU(), nn.Linear(row.hidden, NUM_CLASSES)]
            names = [("W1", "b1"), None, ("W2", "b2")]
        else:
            layers, names = [nn.Linear(DIM, NUM_CLASSES)], [("W", "b")]
        with torch.no_grad():
            for layer, pair in zip(layers, names):
                if pair:  # torch keeps (out, in); ours is (in, out)
                    layer.weight.copy_(torch.from_numpy(model.params[pair[0]].T.copy()))
                    layer.bias.copy_(torch.from_numpy(model.params[pair[1]]))
        self.net = nn.Sequential(*layers)
        weights = [layer.weight for layer, pair in zip(layers, names) if pair]
        biases = [layer.bias for layer, pair in zip(layers, names) if pair]
        self.flat_weights = [w.view(-1) for w in weights]  # for the reported loss's reg * ΣW², as ours
        # our reg * ΣW² over the weights only has gradient 2 reg W: weight_decay 2 reg, biases exempt
        self.opt = torch.optim.SGD([{"params": weights, "weight_decay": 2 * row.reg},
                                    {"params": biases, "weight_decay": 0.0}],
                                   lr=row.lr, momentum=row.momentum, nesterov=row.nesterov)
        self.X = torch.from_numpy(data["X_train"])  # shares memory with NumPy
        self.y = torch.from_numpy(data["y_train"])
        self.X_test = torch.from_numpy(data["X_test"])
        self.gen = torch.Generator().manual_seed(0)

    def epoch(self, lr):
        """Seconds of one pass over the training rows in a fresh random order (shuffle included),
        and the mean loss. Subnormals are flushed (FTZ/DAZ) during the epoch only."""
        torch, F = self.torch, self.torch.nn.functional
        for group in self.opt.param_groups:
            group["lr"] = lr
        n, batch = len(self.X), self.row.batch_size
        losses = []
        torch.set_flush_denormal(True)
        start = time.perf_counter()
        order = torch.randperm(n, generator=self.gen)
        for b in range(0, n, batch):
            idx = order[b:b + batch]
            xb, yb = self.X[idx], self.y[idx]  # gathers a copy, as our trainer does
            if self.row.hflip:
                images = xb.view(len(idx), 3, 32, 32)
                flip = torch.rand(len(idx), generator=self.gen) < 0.5
                images[flip] = images[flip].flip(-1)
            self.opt.zero_grad()
            loss = F.cross_entropy(self.net(xb), yb)
            if self.row.reg:  # the loss value includes reg * ΣW², a dot product per weight as in ours
                with torch.no_grad():
                    penalty = self.row.reg * sum(torch.dot(w, w) for w in self.flat_weights)
            loss.backward()
            self.opt.step()
            losses.append(loss.item() + (penalty.item() if self.row.reg else 0.0))
        seconds = time.perf_counter() - start
        torch.set_flush_denormal(False)
        return seconds, float(np.mean(losses))

    def evaluate(self):
        start = time.perf_counter()
        with self.torch.no_grad():
            self.net(self.X_test).argmax(dim=1)
        return time.perf_counter() - start


# ---------------------------------------------------------------------- one row


def build(row: Row, dtype):
    hyper = dict(loss="softmax", reg=row.reg)
    if row.model == "two_layer":
        hyper["hidden_dim"] = row.hidden
    model = build_model(row.model, DIM, NUM_CLASSES, dtype=dtype, seed=0, **hyper)
    optim = OptimConfig(learning_rate=row.lr, momentum=row.momentum, nesterov=row.nesterov, schedule=row.schedule)
    return model, optim


def bench_row(row: Row, args, data, torch):
    """Alternate our epochs and PyTorch's; return a dict of results for `row`."""
    model, optim = build(row, args.dtype)
    config = TrainConfig(batch_size=row.batch_size, num_epochs=args.epochs + 1, hflip=row.hflip)
    n = len(data["X_train"])
    twin = None
    ours, theirs, our_losses, their_losses = [], [], [], []

    def after_our_epoch(metrics, state):
        nonlocal twin
        start = time.perf_counter()
        np.random.default_rng(metrics["epoch"]).permutation(n)  # the trainer's shuffle, untimed there
        ours.append(metrics["seconds"] + time.perf_counter() - start)
        our_losses.append(metrics["train_loss"])
        if torch is None:
            return
        if twin is None:
            twin = TorchTwin(torch, model, data, row)  # our weights after the warm-up epoch
        # PyTorch's epoch k uses our epoch k's learning rate
        lr = learning_rate(row.lr, row.schedule, metrics["epoch"] - 1, config.num_epochs)
        seconds, loss = twin.epoch(lr)
        theirs.append(seconds)
        their_losses.append(loss)

    result = fit(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                   optim, config, seed=0, progress=False, on_epoch=after_our_epoch)
    if result.status != "completed":
        sys.exit(f"{row.name}: our training did not complete: {result.status}: {result.message}")
    out = {"row": row.name, "workload": describe(row), "train_rows": n,
           "ours_epochs": ours[1:], "ours_median": statistics.median(ours[1:]),  # the first is a warm-up
           "ours_loss_last": our_losses[-1],
           "ours_eval": min(_time(lambda: model.predict(data["X_test"])) for _ in range(3))}
    if twin is not None:
        out.update(torch_epochs=theirs[1:], torch_median=statistics.median(theirs[1:]),
                   torch_loss_last=their_losses[-1], torch_eval=min(twin.evaluate() for _ in range(3)))
        out["ratio"] = out["ours_median"] / out["torch_median"]
    return out


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile_epoch(row: Row, args, data):
    """Print cProfile's top functions (by own time) for one epoch of our trainer, after a warm-up."""
    model, optim = build(row, args.dtype)
    one = TrainConfig(batch_size=row.batch_size, num_epochs=1, hflip=row.hflip)
    fit(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"], optim, one, progress=False)
    profiler = cProfile.Profile()
    profiler.enable()
    fit(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"], optim, one, progress=False)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.profile_top)
    print(text.getvalue())


# ---------------------------------------------------------------------- report


def blas_text():
    return "; ".join(f"{p['internal_api']} {p.get('version') or ''} {p.get('architecture') or ''} "
                     f"threads={p['num_threads']}".replace("  ", " ") for p in blas_libraries())


def blas_status():
    """What cs_nets.training._blas runs on (status() where this cs_nets has it, else backend())."""
    return getattr(blas, "status", blas.backend)()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    rows = {row.name: row for row in all_rows()}
    parser.add_argument("--data-dir", help="CIFAR-10 folder (python or binary layout); default: synthetic")
    parser.add_argument("--rows", default="all", help=f"comma-separated, of: {', '.join(rows)} (default all)")
    parser.add_argument("--epochs", type=int, default=5, help="counted epochs of each side (>= 5; plus 1 warm-up)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if it is installed")
    parser.add_argument("--profile", choices=tuple(rows), metavar="ROW",
                        help="only profile one epoch of ours for this row with cProfile")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.epochs < 5:
        parser.error("--epochs: at least 5 counted epochs, for a meaningful median")
    chosen = list(rows) if args.rows == "all" else [name.strip() for name in args.rows.split(",")]
    unknown = [name for name in chosen if name not in rows]
    if unknown:
        parser.error(f"--rows: unknown row {unknown[0]!r} (expected some of {', '.join(rows)})")

    print(f"# bench_train: Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}, "
          f"CPU {cpu_model()}")
    print(f"BLAS: {blas_text()}")
    print(f"cs_nets.training._blas: {blas_status()}")
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    print(f"thread/kernel environment: {env or 'none set'}")
    load_before = load_text()
    print(f"load before: {load_before}")

    data, data_seconds = load_data(args.data_dir, args.dtype)
    rss_data = peak_rss_mb()
    print(f"data: {len(data['X_train'])} train / {len(data['X_val'])} val / {len(data['X_test'])} test rows, "
          f"{data['X_train'].dtype}, {'synthetic' if args.data_dir is None else args.data_dir}")

    if args.profile:
        profile_epoch(rows[args.profile], args, data)
        return

    torch = None
    if not args.no_torch:
        if importlib.util.find_spec("torch") is None:
            print("PyTorch is not importable: timing ours only")
        else:
            torch = importlib.import_module("torch")
            threads = blas_threads()
            if threads:
                torch.set_num_threads(threads)  # the same thread count on both sides
            print(f"PyTorch {torch.__version__}: {torch.get_num_threads()} threads "
                  f"(NumPy's BLAS: {threads or 'unknown'})")

    results = []
    for name in chosen:
        res = bench_row(rows[name], args, data, torch)
        print(f"{name}: ours {res['ours_median']:.3f} s"
              + (f", PyTorch {res['torch_median']:.3f} s, ratio {res['ratio']:.2f}" if "ratio" in res else ""),
              flush=True)
        results.append(res)
    widths = sorted({rows[name].hidden if rows[name].model == "two_layer" else NUM_CLASSES for name in chosen})
    batch = rows[chosen[0]].batch_size
    rates = {w: {"numpy": sgemm_gflops(batch, w, args.dtype)} for w in widths}
    if torch is not None:
        for w in widths:
            rates[w]["torch"] = torch_mm_gflops(torch, batch, w)

    load_after = load_text()
    print()
    print(report(results, rates, data_seconds, rss_data, load_before, load_after, args, torch))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(results=results, sgemm_gflops={str(k): v for k, v in rates.items()},
                           data_seconds=data_seconds, peak_rss_after_data_mb=rss_data,
                           peak_rss_end_mb=peak_rss_mb(), load_before=load_before, load_after=load_after,
                           blas=blas_status(), cpu=cpu_model(), args=vars(args)), f, indent=2)


def report(results, rates, data_seconds, rss_data, load_before, load_after, args, torch):
    """The results as a markdown table plus per-epoch details, rates, load and memory."""
    lines = [f"{args.dtype}, median of {args.epochs} epochs after 1 warm-up, ours and PyTorch alternating",
             "",
             "| row | workload | ours s/epoch | PyTorch s/epoch | ours/PyTorch | last loss ours / PyTorch |",
             "|---|---|---:|---:|---:|---|"]
    for r in results:
        cells = [r["row"], r["workload"], f"{r['ours_median']:.3f}",
                 f"{r['torch_median']:.3f}" if "torch_median" in r else "–",
                 f"**{r['ratio']:.2f}**" if "ratio" in r else "–",
                 f"{r['ours_loss_last']:.4f} / {r['torch_loss_last']:.4f}" if "torch_loss_last" in r
                 else f"{r['ours_loss_last']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in results:
        line = f"{r['row']}: ours epochs [{' '.join(f'{s:.3f}' for s in r['ours_epochs'])}]"
        if "torch_epochs" in r:
            line += f"; PyTorch [{' '.join(f'{s:.3f}' for s in r['torch_epochs'])}]"
        line += f"; eval 10k ours {r['ours_eval']:.3f} s" + (
            f", PyTorch {r['torch_eval']:.3f} s" if "torch_eval" in r else "")
        lines.append(line)
    for width, by_lib in rates.items():
        lines.append(f"sgemm GFLOP/s, (batch x 3072)·(3072 x {width}) and its backward: " + "; ".join(
            f"{lib} forward {r['forward']:.0f}, backward {r['backward']:.0f}" for lib, r in by_lib.items()))
    if torch is not None:
        lines.append(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    lines.append("data: " + ", ".join(f"{k} {v:.2f} s" for k, v in data_seconds.items())
                 + f"; peak RSS after data {rss_data:.0f} MB, at the end {peak_rss_mb():.0f} MB")
    lines.append(f"load before: {load_before}; after: {load_after}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
