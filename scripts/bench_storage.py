"""Benchmark data.storage: peak memory and epoch time of uint8 against float32 training images.

    python scripts/bench_storage.py --out /tmp/storage-bench --images 200000 --runs 4
    git archive 69c4925 | tar -x -C /tmp/base     # a checkout from before data.storage
    python scripts/bench_storage.py --skip-folder --runs 6 --cifar-dir /tmp/cifar-dev --baseline-src /tmp/base

1. Writes an ImageFolder dataset of ``--images`` 32x32 PNG files (10 class folders,
   synthetic CIFAR-like images from cs_nets.data.synthetic, drawn in chunks) into
   ``--out``, unless ``--out`` already holds one of that size (a marker file says so).
2. Warms the decoded-image cache (``DIR/.cs_nets``) in a process of its own, so that no
   measured run decodes.
3. Runs ``--runs`` fresh processes per storage, alternated (uint8, float32, float32, uint8, ...):
   each is one epoch of ``--config`` (default configs/two_layer.yaml) with
   data.source=folder, data.path=DIR, data.test_fraction=0.1, train.num_epochs=1 and
   data.storage=uint8 or float32, through ``cs_nets.runs.task.run`` (what ``csnets
   train`` calls). Each process reports its own peak RSS (``getrusage(RUSAGE_SELF)``:
   anonymous memory and the pages of the memory-mapped cache it touched), its RSS at the
   end of the epoch split into anonymous and file-backed pages (/proc/self/status), the
   epoch's training seconds (metrics.jsonl) and its wall time.
4. Times the one step the storages do not share, drawing the minibatches (``X_train.take``
   into the batch buffer), for ``--draw-epochs`` epochs each, alternated in one process.
5. With ``--cifar-dir D``: the same config on CIFAR-10 (storage auto), ``--runs`` epochs
   with this source tree alternated (A B, B A, ...) with ``--baseline-src`` (another
   checkout, e.g. from before data.storage), to show the default path kept its speed.

Prints medians (and min/max). Targets (issue 20): uint8 peak RSS <= 1.2 GB; uint8 epoch
<= 1.15 x the float32 epoch on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "bench_storage.json"
CLASSES = 10
CHUNK = 10_000


def generate(out: Path, images: int) -> None:
    """`images` synthetic 32x32 PNGs in `out`/class<k>/<i>.png (balanced classes)."""
    import numpy as np
    from PIL import Image

    from cs_nets.data.images import from_cifar_rows
    from cs_nets.data.synthetic import make_synthetic

    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("images") == images:
        print(f"{out} already holds {images} images")
        return
    if any(out.glob("class*")):
        raise SystemExit(f"{out} holds another dataset (no {MARKER} for {images} images): choose another --out")
    for k in range(CLASSES):
        (out / f"class{k}").mkdir(parents=True, exist_ok=True)
    start, written = time.perf_counter(), 0
    for first in range(0, images, CHUNK):
        n = min(CHUNK, images - first)
        raw = make_synthetic(num_train=n, num_test=1, seed=0)  # the same 10 class templates for every chunk
        rng = np.random.default_rng(first)  # then noise of the chunk's own, so that no two images are equal
        noise = rng.integers(-16, 17, size=raw.X_train.shape, dtype=np.int16)
        rows = np.clip(raw.X_train.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        labels = raw.y_train
        for i, (image, label) in enumerate(zip(from_cifar_rows(rows), labels)):
            Image.fromarray(image).save(out / f"class{int(label)}" / f"{first + i:07d}.png")
        written += n
        rate = written / (time.perf_counter() - start)
        print(f"  {written}/{images} images written ({rate:.0f}/s)", file=sys.stderr)
    marker.write_text(json.dumps({"images": images}))
    print(f"wrote {images} PNG files to {out} in {time.perf_counter() - start:.0f} s")


def proc_status() -> dict:
    """RssAnon, RssFile and VmHWM of this process from /proc/self/status, in MB (empty off Linux)."""
    found = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024  # kB
    except OSError:
        pass
    return found


def child(kind: str, where: str, config_path: str, storage: str | None) -> None:
    """One measured run in this fresh process: prints a JSON line."""
    import resource

    import cs_nets
    from cs_nets.config import load_config
    from cs_nets.runs.task import run

    if kind == "folder":
        sets = ["data.source=folder", f"data.path={where}", "data.test_fraction=0.1"]
        data_dir = None
    else:
        sets, data_dir = [], where
    sets += ["train.num_epochs=1"] + ([f"data.storage={storage}"] if storage else [])
    config = load_config(config_path, sets)
    lines: list[str] = []
    at_end: dict = {}
    with tempfile.TemporaryDirectory(prefix="cs_nets_bench_storage_") as out:
        start = time.perf_counter()
        result = run(config, Path(out) / "run", data_dir=data_dir, log=lines.append,
                     on_epoch=lambda metrics: at_end.update(proc_status()))  # the data is still held here
        seconds = time.perf_counter() - start
        epoch = json.loads((Path(out) / "run" / "metrics.jsonl").read_text().splitlines()[0])
    print(json.dumps({
        "source": str(Path(cs_nets.__file__).parents[1]),
        "data": next((line.split("; run directory")[0] for line in lines if line.startswith("data:")), ""),
        "epoch_s": epoch["seconds"],
        "run_s": seconds,
        "test_accuracy": result.summary.get("test_accuracy"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "end_rss_anon_mb": at_end.get("RssAnon"),
        "end_rss_file_mb": at_end.get("RssFile"),
    }))


def draw_child(folder: str, config_path: str, epochs: int) -> None:
    """The only code the two storages do not share, timed alone: drawing every minibatch of an epoch
    (``X_train.take`` into the batch buffer), float32 and uint8 alternated epoch by epoch in this process,
    so that both see the same machine load. Prints a JSON line of seconds per epoch."""
    import numpy as np

    from cs_nets.config import load_config
    from cs_nets.data.pipeline import prepare_dataset

    sets = ["data.source=folder", f"data.path={folder}", "data.test_fraction=0.1"]
    inputs = {storage: prepare_dataset(load_config(config_path, [*sets, f"data.storage={storage}"]),
                                       progress=False).X_train for storage in ("uint8", "float32")}
    batch = load_config(config_path).train.batch_size
    seconds: dict[str, list] = {storage: [] for storage in inputs}
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = rng.permutation(len(inputs["uint8"]))
        for storage, X in inputs.items():
            out = np.empty((batch, X.shape[1]), X.dtype)
            start = time.perf_counter()
            for b in range(0, len(order), batch):
                idx = order[b:b + batch]
                X.take(idx, axis=0, out=out[:len(idx)], mode="clip")
            seconds[storage].append(time.perf_counter() - start)
    print(json.dumps(seconds))


def measure(kind: str, where: Path, config: str, storage: str | None, src: Path) -> dict:
    """One fresh process of `child` with cs_nets imported from `src`; adds its wall time."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--child", kind, str(where), "--config", config]
    command += ["--storage", storage] if storage else []
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"a measured run failed:\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    got["wall_s"] = time.perf_counter() - start
    print(f"  {kind} {storage or 'auto'} [{src}]: epoch {got['epoch_s']:.2f} s, wall {got['wall_s']:.1f} s, "
          f"peak RSS {got['peak_rss_mb']:.0f} MB (at the end: anon {got['end_rss_anon_mb']:.0f} MB, "
          f"file {got['end_rss_file_mb']:.0f} MB); {got['data']}", file=sys.stderr)
    return got


def summarize(label: str, runs: list[dict]) -> dict:
    stats = {}
    for key in ("epoch_s", "wall_s", "peak_rss_mb", "end_rss_anon_mb", "end_rss_file_mb"):
        values = [r[key] for r in runs]
        stats[key] = statistics.median(values)
        fmt = "{:.2f}" if key.endswith("_s") else "{:.0f}"
        print(f"{label:<28}{key:<18}median {fmt.format(stats[key]):>8}   min {fmt.format(min(values)):>8}   "
              f"max {fmt.format(max(values)):>8}   ({len(values)} runs)")
    return stats


def abba(names: list, round_: int) -> list:
    """`names` in order in even rounds, reversed in odd ones (A B, B A, A B, ...): neither side
    always runs first after the other."""
    return names if round_ % 2 == 0 else names[::-1]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/storage-bench"),
                        help="the image folder to write and train on (under /tmp; default /tmp/storage-bench)")
    parser.add_argument("--images", type=int, default=200_000, help="images to generate (default 200,000)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per storage (default 3)")
    parser.add_argument("--config", default=str(REPO / "configs" / "two_layer.yaml"))
    parser.add_argument("--generate-only", action="store_true", help="write the images and stop")
    parser.add_argument("--skip-folder", action="store_true", help="do not measure the folder dataset")
    parser.add_argument("--cifar-dir", type=Path, help="also time --config on this CIFAR-10 data folder")
    parser.add_argument("--baseline-src", type=Path, help="with --cifar-dir: the checkout to compare with")
    parser.add_argument("--draw-epochs", type=int, default=3,
                        help="epochs of minibatch drawing alone, per storage, alternated in one process (0: skip)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--draw-child", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.config, args.storage)
    if args.draw_child:
        return draw_child(args.draw_child, args.config, args.draw_epochs)
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs")
    if not args.skip_folder:
        generate(args.out, args.images)
        if args.generate_only:
            return
        print("decoding into the cache (or finding it)...", file=sys.stderr)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; from cs_nets.data.folder import load_folder; "
                        "load_folder(sys.argv[1], 32, 0.1, progress=False)", str(args.out)],
                       check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        print(f"cache ready in {time.perf_counter() - start:.1f} s")
        runs: dict[str, list] = {"uint8": [], "float32": []}
        for i in range(args.runs):
            for storage in abba(list(runs), i):  # alternated: uint8, float32, float32, uint8, ...
                runs[storage].append(measure("folder", args.out, args.config, storage, REPO))
        print(f"\n{args.images} images in {args.out}, one epoch of {args.config} per process")
        stats = {storage: summarize(f"data.storage={storage}", got) for storage, got in runs.items()}
        ratio = stats["uint8"]["epoch_s"] / stats["float32"]["epoch_s"]
        rss = stats["uint8"]["peak_rss_mb"]
        print(f"uint8 epoch / float32 epoch (medians): {ratio:.3f} (target <= 1.15: "
              f"{'met' if ratio <= 1.15 else 'MISSED'}); uint8 peak RSS {rss:.0f} MB (target <= 1200 MB "
              f"(1.2 GB): {'met' if rss <= 1200 else 'MISSED'})")
        print(f"load average now: {load()}")
        if args.draw_epochs:
            proc = subprocess.run([sys.executable, __file__, "--draw-child", str(args.out), "--config", args.config,
                                   "--draw-epochs", str(args.draw_epochs)], capture_output=True, text=True,
                                  check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            draws = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"drawing the minibatches of one epoch alone (X_train.take, {args.draw_epochs} epochs each, "
                  f"alternated in one process):")
            for storage, values in draws.items():
                print(f"  {storage:<8} median {statistics.median(values):.3f} s   "
                      f"({' '.join(f'{v:.3f}' for v in values)})")
            print(f"load average now: {load()}")
    if args.cifar_dir:
        sources = {"this tree": REPO, **({"baseline": args.baseline_src} if args.baseline_src else {})}
        cifar: dict[str, list] = {name: [] for name in sources}
        for i in range(args.runs):
            for name in abba(list(sources), i):
                cifar[name].append(measure("cifar", args.cifar_dir, args.config, None, sources[name]))
        print(f"\nCIFAR-10 in {args.cifar_dir}, one epoch of {args.config} (data.storage default) per process")
        got = {name: summarize(f"{name} ({src})"[:27], cifar[name]) for name, src in sources.items()}
        if "baseline" in got:
            ratio = got["this tree"]["epoch_s"] / got["baseline"]["epoch_s"]
            print(f"this tree / baseline epoch (medians): {ratio:.3f}")
        print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
