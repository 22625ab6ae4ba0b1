"""Benchmark the CIFAR-10 data layer: download throughput, then load + preprocess time and memory.

    python scripts/bench_data.py --url http://127.0.0.1:8765/cifar-10-python.tar.gz \\
        --md5 b9f996bf042de742d888e946f24c23cb --repeats 5

1. Downloads the archive into a temporary data folder under /tmp (MB/s), verifies and
   extracts it (``--data-dir`` reuses a folder instead and skips this step).
2. Runs ``--repeats`` fresh Python processes; each loads the extracted python layout and
   produces float32 train/val/test with mean subtraction (num_val=1000), and reports its
   time and its own peak RSS (``resource.getrusage``), so every run's peak is separate.
3. Prints medians. Targets: load + preprocess <= 1.5 s, peak RSS <= 1.3 GB.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(data_dir):
    """One measured run in this (fresh) process; prints a JSON line."""
    import resource

    from cs_nets.data.cifar10 import load_cifar10
    from cs_nets.data.preprocess import Normalizer, split_train_val

    start = time.perf_counter()
    raw = load_cifar10(data_dir, "python")
    loaded = time.perf_counter()
    split = split_train_val(raw, num_val=1000)
    norm = Normalizer("mean", dtype="float32").fit(split.X_train)
    X_train, X_val, X_test = (norm.transform(X) for X in (split.X_train, split.X_val, split.X_test))
    done = time.perf_counter()
    print(json.dumps({
        "load_s": loaded - start,
        "preprocess_s": done - loaded,
        "total_s": done - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "shapes": [X_train.shape, X_val.shape, X_test.shape],
        "raw_mb": (raw.X_train.nbytes + raw.X_test.nbytes) / 1e6,
        "float_mb": (X_train.nbytes + X_val.nbytes + X_test.nbytes) / 1e6,
        "train_mean_abs": float(abs(X_train[:1000].mean())),
    }))


def fetch_and_extract(url, md5, data_dir):
    """Download (timed on its own), then verify and extract; returns a dict of timings."""
    from cs_nets.data.cifar10 import OFFICIAL, download_cifar10
    from cs_nets.data.download import fetch

    archive = data_dir / OFFICIAL["python"].filename
    start = time.perf_counter()
    fetch(url, archive, md5, progress=sys.stderr.isatty())
    fetched = time.perf_counter()
    download_cifar10(data_dir, "python", url=url, md5=md5, progress=False)  # finds the archive
    extracted = time.perf_counter()
    size_mb = archive.stat().st_size / 1e6
    return {"size_mb": size_mb, "download_s": fetched - start,
            "mb_per_s": size_mb / (fetched - start), "verify_extract_s": extracted - fetched}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="archive URL (python layout)")
    parser.add_argument("--md5", help="expected archive MD5")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="use this extracted data folder; no download")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    if not args.data_dir and not args.url:
        parser.error("give --url (and --md5) to download, or --data-dir to reuse data")

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="cs_nets_bench_", dir="/tmp"))
    try:
        if not args.data_dir:
            got = fetch_and_extract(args.url, args.md5, data_dir)
            print(f"download: {got['size_mb']:.1f} MB in {got['download_s']:.2f} s = "
                  f"{got['mb_per_s']:.1f} MB/s; verify + extract: {got['verify_extract_s']:.2f} s")
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, "--child", str(data_dir)],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        first = runs[0]
        print(f"\n{args.repeats} fresh processes; shapes train/val/test: "
              f"{', '.join(str(tuple(s)) for s in first['shapes'])}; "
              f"raw uint8 {first['raw_mb']:.0f} MB, float32 out {first['float_mb']:.0f} MB")
        print(f"{'stage':<26}{'median':>10}{'min':>10}{'max':>10}")
        for key, label, unit in [("load_s", "load (python layout)", "s"),
                                 ("preprocess_s", "split + mean + float32", "s"),
                                 ("total_s", "total", "s"),
                                 ("peak_rss_mb", "peak RSS", "MB")]:
            values = [run[key] for run in runs]
            fmt = "{:>9.3f}" + unit if unit == "s" else "{:>8.0f}" + unit
            print(f"{label:<26}" + "".join(fmt.format(v).rjust(10) for v in
                                           (statistics.median(values), min(values), max(values))))
        total, rss = statistics.median(r["total_s"] for r in runs), max(r["peak_rss_mb"] for r in runs)
        print(f"\ntargets: total <= 1.5 s: {'met' if total <= 1.5 else 'MISSED'} ({total:.3f} s); "
              f"peak RSS <= 1300 MB: {'met' if rss <= 1300 else 'MISSED'} ({rss:.0f} MB)")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.data_dir and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif not args.data_dir:
            print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
