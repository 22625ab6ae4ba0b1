"""Benchmark the data layer: download throughput, then time to the first batch and peak memory of a run.

    python scripts/bench_data.py --url http://127.0.0.1:8765/cifar-10-python.tar.gz \\
        --md5 b9f996bf042de742d888e946f24c23cb --repeats 5
    python scripts/bench_data.py --data-dir D --config configs/two_layer.yaml

1. Downloads the archive into a temporary data folder under /tmp (MB/s), verifies and
   extracts it (``--data-dir`` reuses a folder instead and skips this step).
2. Runs ``--repeats`` fresh Python processes; each is one epoch of the library's run
   function (``cs_nets.runs.task.run``, what ``csnets train`` calls) on ``--config``. The
   time to the first batch runs from the call to the moment the run reports its data
   ready and its model built (the ``data: ...`` line, logged right before the first
   batch): load, split, normalize, build. Each process reports that time split into
   load / preprocess / build, and its own peak RSS over the whole epoch
   (``resource.getrusage``), so every run's peak is separate.
3. Prints medians. Targets (issue 15): time to the first batch <= 1.0 s, peak RSS of
   configs/two_layer.yaml on the full 50,000-image set <= 800 MB.
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


def child(data_dir, config_path):
    """One measured run in this (fresh) process; prints a JSON line."""
    import resource

    import cs_nets.data.pipeline as pipeline
    from cs_nets.config import load_config
    from cs_nets.runs.task import run

    config = load_config(config_path, ["train.num_epochs=1"])
    marks = {}
    load_images = pipeline.load_images

    def timed_load(*args, **kwargs):  # the split of the time: reading the files vs the rest
        raw = load_images(*args, **kwargs)
        marks["loaded"] = time.perf_counter()
        return raw

    pipeline.load_images = timed_load

    def log(message):
        if message.startswith("data:"):
            marks["first_batch"] = time.perf_counter()
            marks["data"] = message.split(";")[0]

    with tempfile.TemporaryDirectory(prefix="cs_nets_bench_run_") as out:
        start = time.perf_counter()
        run(config, Path(out) / "run", data_dir=data_dir, log=log)
    print(json.dumps({
        "data": marks["data"],
        "load_s": marks["loaded"] - start,
        "preprocess_s": marks["first_batch"] - marks["loaded"],
        "total_s": marks["first_batch"] - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
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
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "two_layer.yaml"),
                        help="the config whose run is measured (default: configs/two_layer.yaml)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.config)
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
            out = subprocess.run([sys.executable, __file__, "--child", str(data_dir), "--config", args.config],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"\n{args.repeats} fresh processes, one epoch of {args.config} each; {runs[0]['data']}")
        print(f"{'stage':<34}{'median':>10}{'min':>10}{'max':>10}")
        for key, label, unit in [("load_s", "read the files", "s"),
                                 ("preprocess_s", "split + normalize + build model", "s"),
                                 ("total_s", "time to the first batch", "s"),
                                 ("peak_rss_mb", "peak RSS (whole epoch)", "MB")]:
            values = [run[key] for run in runs]
            fmt = "{:>9.3f}" + unit if unit == "s" else "{:>8.0f}" + unit
            print(f"{label:<34}" + "".join(fmt.format(v).rjust(10) for v in
                                           (statistics.median(values), min(values), max(values))))
        total, rss = statistics.median(r["total_s"] for r in runs), max(r["peak_rss_mb"] for r in runs)
        print(f"\ntargets: first batch <= 1.0 s: {'met' if total <= 1.0 else 'MISSED'} ({total:.3f} s); "
              f"peak RSS <= 800 MB: {'met' if rss <= 800 else 'MISSED'} ({rss:.0f} MB)")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.data_dir and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif not args.data_dir:
            print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
