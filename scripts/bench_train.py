#!/usr/bin/env python
"""Time every phase a user waits for: loading data, training epochs, scoring the test set.

    python scripts/bench_train.py                         # synthetic: 49,000 x 3072 float32
    python scripts/bench_train.py --data-dir ~/cifar      # the real CIFAR-10 (train minus 1,000 val)
    python scripts/bench_train.py --model two_layer --epochs 7 --json /tmp/bench.json
    python scripts/bench_train.py --profile two_layer     # cProfile of one epoch, by tottime

Ours is ``cs_nets.trainer.train``, the code path ``csnets train`` runs. When PyTorch
can be imported, the same model (same weights, batch size, optimizer and learning
rate) is trained in PyTorch in the same process; the two alternate epoch by epoch
(ours, theirs, ours, ...) so that load from other processes hits both alike. The
first epoch of each is a warm-up and is not counted; PyTorch starts from our weights
after that warm-up. PyTorch is never a dependency of cs_nets: without it only our
numbers are printed.

Data: synthetic rows are N(0, 1) float32 with random labels; real data are
standardized per feature (data.normalize: mean_std), so the He-initialized net
starts with sensible scores either way.

Reported: median seconds of the counted epochs (minibatch loop only, as the trainer's
``seconds`` metric), the ratio ours / PyTorch, the achieved GFLOP/s of the two
products that dominate an epoch (forward X W and backward Xᵀ dZ: their FLOPs over
the epoch time) next to the machine's sgemm rate at the same shapes (np.matmul
with out=, and torch.mm in nn.Linear's layout) and the epoch time those rates
alone would take (the "floor"), the time to score 10,000 images, the time to load
the data, the peak RSS and the load average before and after.
--profile prints cProfile's table instead; the forward products show as the own
time of the model's ``loss`` (``@`` is not a function call), the backward ones as
``cs_nets.blas.gemm``. CS_NETS_BLAS=numpy times the NumPy-only fallback of
cs_nets.blas (what runs where NumPy's OpenBLAS is not found).

Threads: NumPy's BLAS (OpenBLAS in the NumPy wheels) and PyTorch each use all cores
by default. OMP_NUM_THREADS=1 (both) or OPENBLAS_NUM_THREADS=1 (NumPy only), set
before Python starts, limits them; the script prints what it found, and the BLAS
kernel when threadpoolctl is installed. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if
set, can select a slower kernel: unset them for benchmarking. Other jobs on the
machine slow multi-threaded products badly: check the printed load.
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

import numpy as np

from cs_nets import blas
from cs_nets.config import OptimConfig, TrainConfig
from cs_nets.models import build_model
from cs_nets.trainer import fit

NUM_CLASSES = 10
DIM = 3 * 32 * 32
SYNTHETIC_TRAIN, SYNTHETIC_VAL, SYNTHETIC_TEST = 49_000, 1_000, 10_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


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


def dominant_shapes(batch, hidden):
    """The (M, K) x (K, N) shapes of the forward X W and the backward Xᵀ dZ products."""
    return {"forward X·W": (batch, DIM, hidden), "backward Xᵀ·dZ": (DIM, batch, hidden)}


def sgemm_gflops(m, k, n, dtype="float32", repeats=40):
    """Median GFLOP/s of np.matmul(A (m,k), B (k,n), out=C), B read transposed when it is Xᵀ."""
    rng = np.random.default_rng(1)
    if m == DIM:  # Xᵀ dZ: A is the transpose of a (k, m) batch, as in the backward pass
        A = rng.standard_normal((k, m)).astype(dtype).T
    else:
        A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C = np.empty((m, n), dtype)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times[3:]) / 1e9


def torch_mm_gflops(torch, batch, hidden, repeats=40):
    """Median GFLOP/s of PyTorch's own products in nn.Linear's layout: X Wᵀ and dZᵀ X (W is (H, D))."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(batch, DIM, generator=gen)
    W = torch.randn(hidden, DIM, generator=gen)
    dZ = torch.randn(batch, hidden, generator=gen)
    Z, dW = torch.empty(batch, hidden), torch.empty(hidden, DIM)
    rates = {}
    for name, fn in (("forward X·W", lambda: torch.mm(X, W.t(), out=Z)),
                     ("backward Xᵀ·dZ", lambda: torch.mm(dZ.t(), X, out=dW))):
        times = []
        for _ in range(repeats + 3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        rates[name] = 2 * batch * DIM * hidden / statistics.median(times[3:]) / 1e9
    return rates


# ---------------------------------------------------------------------- PyTorch twin


class TorchTwin:
    """The same model in PyTorch, initialised from our model's weights, trained with torch.optim.SGD."""

    def __init__(self, torch, model, data, args):
        self.torch = torch
        nn = torch.nn
        params = model.params
        if args.model_type == "two_layer":
            layers = [nn.Linear(DIM, args.hidden), nn.ReLU(), nn.Linear(args.hidden, NUM_CLASSES)]
            weights = [("W1", "b1"), None, ("W2", "b2")]
        else:
            layers, weights = [nn.Linear(DIM, NUM_CLASSES)], [("W", "b")]
        with torch.no_grad():
            for layer, names in zip(layers, weights):
                if names:  # torch keeps (out, in); ours is (in, out)
                    layer.weight.copy_(torch.from_numpy(params[names[0]].T.copy()))
                    layer.bias.copy_(torch.from_numpy(params[names[1]]))
        self.net = nn.Sequential(*layers)
        # Our reg * ΣW² (weights only) is torch's weight_decay = 2 reg; torch also decays biases,
        # so the benchmark runs with reg 0 unless asked.
        self.opt = torch.optim.SGD(self.net.parameters(), lr=args.lr, momentum=args.momentum,
                                   nesterov=args.nesterov, weight_decay=2 * args.reg)
        self.X = torch.from_numpy(data["X_train"])  # shares memory with NumPy
        self.y = torch.from_numpy(data["y_train"])
        self.X_test = torch.from_numpy(data["X_test"])
        self.batch = args.batch_size
        self.gen = torch.Generator().manual_seed(0)

    def epoch(self):
        """Seconds of one pass over the training rows in a fresh random order, and the mean loss."""
        torch, F = self.torch, self.torch.nn.functional
        n = len(self.X)
        losses = []
        start = time.perf_counter()
        order = torch.randperm(n, generator=self.gen)
        for b in range(0, n, self.batch):
            idx = order[b:b + self.batch]
            xb, yb = self.X[idx], self.y[idx]
            self.opt.zero_grad()
            loss = F.cross_entropy(self.net(xb), yb)
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
        return time.perf_counter() - start, float(np.mean(losses))

    def evaluate(self):
        start = time.perf_counter()
        with self.torch.no_grad():
            self.net(self.X_test).argmax(dim=1)
        return time.perf_counter() - start


# ---------------------------------------------------------------------- one model


def bench_model(args, data, with_torch):
    """Alternate our epochs and PyTorch's; return a dict of results for `args.model_type`.

    PyTorch is imported after our first epoch, so the first model's peak RSS
    "ours only" is measured without it.
    """
    hyper = dict(hidden_dim=args.hidden, loss="softmax", reg=args.reg) if args.model_type == "two_layer" \
        else dict(loss="softmax", reg=args.reg)
    model = build_model(args.model_type, DIM, NUM_CLASSES, dtype=args.dtype, seed=0, **hyper)
    optim = OptimConfig(learning_rate=args.lr, momentum=args.momentum, nesterov=args.nesterov)
    config = TrainConfig(batch_size=args.batch_size, num_epochs=args.epochs + 1)
    twin = None
    ours, theirs, our_losses, their_losses = [], [], [], []
    rss = {}

    def after_our_epoch(metrics, state):
        nonlocal twin
        ours.append(metrics["seconds"])
        our_losses.append(metrics["train_loss"])
        if not with_torch:
            return
        if twin is None:
            if "torch" not in sys.modules:
                rss["ours only"] = peak_rss_mb()
            twin = TorchTwin(importlib.import_module("torch"), model, data, args)  # our weights after epoch 1
        seconds, loss = twin.epoch()
        theirs.append(seconds)
        their_losses.append(loss)

    result = fit(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                   optim, config, seed=0, progress=False, on_epoch=after_our_epoch)
    if result.status != "completed":
        sys.exit(f"our training did not complete: {result.status}: {result.message}")

    out = {
        "model": args.model_type,
        "train_rows": len(data["X_train"]),
        "ours_epochs": ours[1:],  # the first of each is a warm-up
        "ours_median": statistics.median(ours[1:]),
        "ours_loss_last": our_losses[-1],
        "ours_eval": min(_time(lambda: model.predict(data["X_test"])) for _ in range(3)),
    }
    if twin is not None:
        out.update(torch_epochs=theirs[1:], torch_median=statistics.median(theirs[1:]),
                   torch_loss_last=their_losses[-1],
                   torch_eval=min(twin.evaluate() for _ in range(3)))
        out["ratio"] = out["ours_median"] / out["torch_median"]
    out["peak_rss_mb"] = {**rss, "end": peak_rss_mb()}
    return out


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile_epoch(args, data):
    """Print cProfile's top functions (by own time) for one epoch of our trainer, after a warm-up."""
    hyper = dict(hidden_dim=args.hidden, loss="softmax") if args.model_type == "two_layer" else dict(loss="softmax")
    model = build_model(args.model_type, DIM, NUM_CLASSES, dtype=args.dtype, seed=0, **hyper)
    optim = OptimConfig(learning_rate=args.lr, momentum=args.momentum, nesterov=args.nesterov)
    one = TrainConfig(batch_size=args.batch_size, num_epochs=1)
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
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed (pip install threadpoolctl to see the BLAS kernel)"
    return "; ".join(f"{p['internal_api']} {p.get('version') or ''} {p.get('architecture') or ''} "
                     f"threads={p['num_threads']}".replace("  ", " ") for p in threadpool_info())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-dir", help="CIFAR-10 folder (python or binary layout); default: synthetic")
    parser.add_argument("--model", choices=("two_layer", "linear", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=5, help="counted epochs of each (>= 5; plus 1 warm-up)")
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--nesterov", action="store_true")
    parser.add_argument("--reg", type=float, default=0.0)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if it is installed")
    parser.add_argument("--profile", choices=("two_layer", "linear"),
                        help="only profile one epoch of ours with cProfile and print the top functions")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.epochs < 5:
        parser.error("--epochs: at least 5 counted epochs, for a meaningful median")

    print(f"# bench_train: Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}")
    print(f"BLAS: {blas_text()}; cs_nets.blas backend: {blas.backend()}")
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    print(f"thread/kernel environment: {env or 'none set (libraries use all cores)'}")
    load_before = load_text()
    print(f"load before: {load_before}")

    data, data_seconds = load_data(args.data_dir, args.dtype)
    rss_data = peak_rss_mb()
    print(f"data: {len(data['X_train'])} train / {len(data['X_val'])} val / {len(data['X_test'])} test rows, "
          f"{data['X_train'].dtype}, {'synthetic' if args.data_dir is None else args.data_dir}")

    if args.profile:
        args.model_type = args.profile
        profile_epoch(args, data)
        return

    with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    if not args.no_torch and not with_torch:
        print("PyTorch is not importable: timing ours only")

    models = ("two_layer", "linear") if args.model == "both" else (args.model,)
    results = []
    for model_type in models:
        args.model_type = model_type
        width = args.hidden if model_type == "two_layer" else NUM_CLASSES
        shapes = dominant_shapes(args.batch_size, width)
        rates = {name: sgemm_gflops(*shape, dtype=args.dtype) for name, shape in shapes.items()}
        res = bench_model(args, data, with_torch)
        n = res["train_rows"]
        flops = 2 * (2 * n * DIM * width)  # both products over all rows of the epoch
        res["sgemm_gflops"] = rates
        res["floor_seconds"] = sum(2 * n * DIM * width / (rate * 1e9) for rate in rates.values())
        res["ours_gflops"] = flops / res["ours_median"] / 1e9
        if "torch_median" in res:
            torch = sys.modules["torch"]
            res["torch_version"] = f"{torch.__version__}, {torch.get_num_threads()} threads"
            res["torch_gflops"] = flops / res["torch_median"] / 1e9
            res["torch_mm_gflops"] = torch_mm_gflops(torch, args.batch_size, width)
            res["torch_floor_seconds"] = sum(2 * n * DIM * width / (rate * 1e9)
                                             for rate in res["torch_mm_gflops"].values())
        res["shapes"] = {name: f"({m}x{k})·({k}x{n_})" for name, (m, k, n_) in shapes.items()}
        results.append(res)

    load_after = load_text()
    print()
    print(report(results, data_seconds, rss_data, load_before, load_after, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(results=results, data_seconds=data_seconds, peak_rss_after_data_mb=rss_data,
                           load_before=load_before, load_after=load_after, args=vars(args)), f, indent=2)


def report(results, data_seconds, rss_data, load_before, load_after, args):
    """The results as a markdown table plus per-epoch details, load and memory."""
    lines = [f"batch {args.batch_size}, SGD lr {args.lr:g} momentum {args.momentum:g}"
             f"{' nesterov' if args.nesterov else ''}, reg {args.reg:g}, {args.dtype}, "
             f"median of {args.epochs} epochs after 1 warm-up, ours and PyTorch alternating",
             "",
             "| model | train rows | ours s/epoch | PyTorch s/epoch | ours/PyTorch | ours GFLOP/s "
             "| PyTorch GFLOP/s | NumPy sgemm GFLOP/s (fwd, bwd) | NumPy floor s/epoch "
             "| PyTorch mm GFLOP/s (fwd, bwd) | PyTorch floor s/epoch "
             "| eval 10k ours s | eval 10k PyTorch s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    def cell(r, key, fmt):
        return format(r[key], fmt) if key in r else "–"

    for r in results:
        rates = ", ".join(f"{v:.0f}" for v in r["sgemm_gflops"].values())
        torch_rates = ", ".join(f"{v:.0f}" for v in r.get("torch_mm_gflops", {}).values()) or "–"
        cells = [r["model"], str(r["train_rows"]), cell(r, "ours_median", ".3f"), cell(r, "torch_median", ".3f"),
                 cell(r, "ratio", ".2f"), cell(r, "ours_gflops", ".0f"), cell(r, "torch_gflops", ".0f"), rates,
                 cell(r, "floor_seconds", ".3f"), torch_rates, cell(r, "torch_floor_seconds", ".3f"),
                 cell(r, "ours_eval", ".3f"), cell(r, "torch_eval", ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in results:
        line = (f"{r['model']}: ours epochs [{' '.join(f'{s:.3f}' for s in r['ours_epochs'])}] "
                f"last loss {r['ours_loss_last']:.4f}")
        if "torch_epochs" in r:
            line += (f"; PyTorch epochs [{' '.join(f'{s:.3f}' for s in r['torch_epochs'])}] "
                     f"last loss {r['torch_loss_last']:.4f}")
        lines.append(line)
        lines.append(f"  shapes: {r['shapes']}; peak RSS MB: "
                     + ", ".join(f"{k} {v:.0f}" for k, v in r["peak_rss_mb"].items()))
    if "torch_version" in results[0]:
        lines.append(f"PyTorch {results[0]['torch_version']}")
    lines.append("data: " + ", ".join(f"{k} {v:.2f} s" for k, v in data_seconds.items())
                 + f"; peak RSS after data {rss_data:.0f} MB")
    lines.append(f"load before: {load_before}; after: {load_after}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
