"""Time feature extraction over all CIFAR-10 images (train + test).

    python scripts/bench_features.py --data-dir D [--repeats 3] [--transforms hog,color_hist]
    python scripts/bench_features.py --data-dir D --transforms bow      # bag of words, 256 words
    python scripts/bench_features.py --data-dir D --transforms bow --set words=1600 --set stride=2
    python scripts/bench_features.py --data-dir D --transforms bow --set words=1600 --mirrors \
        --variant symmetric=false --variant symmetric=true     # alternated, repeat by repeat
    python scripts/bench_features.py --data-dir D --transforms hog,color_hist,bow --set words=1600 \
        --set symmetric=true --mirrors --moved 2 --images 6000   # the views data.shift_average scores

For ``bow`` the codebook is first learned from the training images (timed on its
own), then every repeat encodes all the images from scratch (no feature cache), and
right after it times the encoder's distance products alone: the same (tile rows,
3p² + 2) x (3p² + 2, words) float32 products, tile for tile, with the same workers
and BLAS threads (cs_nets.features.bow.run_workers), on random numbers. Their
median is the floor the encoder is measured against ("encoder / products").
With --mirrors every repeat extracts the images and their left-right mirrors
(``extract_features``'s mirrored_out, as data.hflip_copies and data.hflip_average do):
a symmetric codebook gives both from one pass, any other encodes the mirrors too.
With --moved N every repeat extracts instead the images' views moved N pixels (right,
left, down, up; with --mirrors each with its mirror: ``extract_views``), what
data.shift_average adds to the scoring of every image.
The peak RSS of the process is printed at the end.

Loads the python-layout batches from <data-dir>/cifar-10-batches-py (through
cs_nets.data.cifar10 when it exists), tiles them up to --images if the mirror is
smaller than the full 60,000, and prints every repeat, the median and the load
average, since the machine may be shared.
"""

import argparse
import os
import pickle
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from cs_nets.config import yaml_load
from cs_nets.features import Encoder, extract_features, extract_views, feature_dim, fit_codebook, normalize_transforms
from cs_nets.features.bow import run_workers
from cs_nets.features.views import averaged_views


def load_pixels(data_dir):
    """All train + test rows, (N, 3072) uint8, and how many of them are training rows."""
    try:
        from cs_nets.data.cifar10 import load_cifar10
    except ImportError:
        load_cifar10 = None
    if load_cifar10 is not None:
        data = load_cifar10(data_dir)
        return np.concatenate([data.X_train, data.X_test]), len(data.X_train), "cs_nets.data.cifar10.load_cifar10"
    folder = Path(data_dir) / "cifar-10-batches-py"
    rows = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "rb") as f:
            rows.append(np.asarray(pickle.load(f, encoding="bytes")[b"data"], dtype=np.uint8))
    return np.concatenate(rows), sum(len(r) for r in rows[:5]), "pickle fallback (trusted local dev mirror)"


def fit_codebooks(transforms, X_train):
    """The codebook of every bow transform, learned from X_train (None for the others), and the seconds taken."""
    start = time.perf_counter()
    keys = ("words", "patch", "whiten", "samples", "iterations", "seed", "symmetric")
    codebooks = [fit_codebook(X_train, **{k: t[k] for k in keys}) if t["type"] == "bow" else None
                 for t in transforms]
    return codebooks, time.perf_counter() - start


def products_alone(encoders, n):
    """Seconds of the distance products of `encoders` for n images, tiled and threaded as the encoder does."""
    start = time.perf_counter()
    for enc in encoders:
        rows = enc.batch * enc.positions ** 2
        z = np.random.default_rng(0).standard_normal((rows, enc.dim + 2), dtype=np.float32)
        tiles = [(s, min(s + enc.batch, n)) for s in range(0, n, enc.batch)]

        def work(mine, enc=enc, z=z, rows=rows):
            d = np.empty((rows, enc.words), dtype=np.float32)
            for a, b in mine:
                m = (b - a) * enc.positions ** 2
                np.matmul(z[:m], enc.centroid_matrix, out=d[:m])

        run_workers(work, tiles, enc.threads)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transforms", default="hog,color_hist", help="comma-separated types, defaults for each")
    parser.add_argument("--images", type=int, default=60000, help="images per run (tiled if the data has fewer)")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--mirrors", action="store_true", help="extract the images' mirrors too (one pass if it can)")
    parser.add_argument("--moved", type=int, default=0, metavar="N",
                        help="extract the views moved N pixels instead (with --mirrors: and their mirrors)")
    parser.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter for every transform that has it, e.g. words=1600 (repeatable)")
    parser.add_argument("--variant", dest="variants", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="parameters on top of --set; several variants are timed in turn, repeat by repeat")
    args = parser.parse_args(argv)

    X, num_train, source = load_pixels(args.data_dir)
    real = len(X)
    print(f"data: {real} images via {source}" + (f", tiled to {args.images}" if args.images > real else ""))
    variants = [prepare(args, variant, X[:num_train]) for variant in (args.variants or [""])]
    if real < args.images:
        X = np.concatenate([X] * (-(-args.images // real)))
    X = np.ascontiguousarray(X[: args.images])
    print(f"cpus: {os.cpu_count()}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for i in range(args.repeats):  # the variants alternate, so a change in the machine's load hits each alike
        for v in variants:
            start = time.perf_counter()
            if args.moved:
                moved = [view for view in averaged_views(args.moved, args.mirrors) if view.shifted]
                features = extract_views(X, v["transforms"], moved, chunk=args.chunk, progress=False,
                                         codebooks=v["codebooks"])[0]
            else:
                mirrored = np.empty((len(X), feature_dim(v["transforms"])), dtype=np.float32) if args.mirrors else None
                features = extract_features(X, v["transforms"], chunk=args.chunk, progress=False,
                                            codebooks=v["codebooks"], mirrored_out=mirrored)
                del mirrored
            v["times"].append(time.perf_counter() - start)
            line = f"  run {i + 1}{' ' + v['name'] if v['name'] else ''}: {v['times'][-1]:.2f} s"
            if v["encoders"]:
                v["floors"].append(products_alone(v["encoders"], len(X)))
                line += f"; distance products alone {v['floors'][-1]:.2f} s"
            print(line + f" (load {os.getloadavg()[0]:.2f})", flush=True)
    what = "images and their mirrors" if args.mirrors else "images"
    if args.moved:
        what = f"images' {4 * (1 + args.mirrors)} views moved {args.moved} pixels"
    for v in variants:
        median = statistics.median(v["times"])
        print(f"{v['name'] + ': ' if v['name'] else ''}median {median:.2f} s for {len(X)} {what} "
              f"({len(X) / median:,.0f} images/s), output {features.shape[1]} values per image")
        if v["floors"]:
            floor = statistics.median(v["floors"])
            flops = sum(2 * len(X) * e.positions ** 2 * (e.dim + 2) * e.words for e in v["encoders"])
            print(f"  distance products alone: median {floor:.2f} s ({flops / floor / 1e9:.0f} GFLOP/s); "
                  f"encoder / products {median / floor:.2f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


def prepare(args, variant, X_train):
    """One variant's transforms (--set, then the variant's KEY=VALUE pairs), codebooks and encoders, printed."""
    pairs = [*args.params, *[p for p in variant.split(",") if p.strip()]]
    params = {key.strip(): yaml_load(value) for key, _, value in (p.partition("=") for p in pairs)}
    transforms = normalize_transforms([name.strip() for name in args.transforms.split(",")])
    transforms = normalize_transforms([{**t, **{k: v for k, v in params.items() if k in t}} for t in transforms])
    codebooks, fit_seconds = fit_codebooks(transforms, X_train)
    name = variant.strip()
    print(f"{name + ': ' if name else ''}transforms {transforms} -> {feature_dim(transforms)} features per image")
    if any(c is not None for c in codebooks):
        print(f"  codebook(s) learned from the {len(X_train)} training images in {fit_seconds:.1f} s")
    encoders = [Encoder(c, t["stride"], t["encoding"], t["pooling"]) for c, t in zip(codebooks, transforms)
                if c is not None]
    if encoders:
        print("  encoder: " + ", ".join(f"{e.words} words, {e.positions ** 2} patches/image, {e.batch} images/tile, "
                                        f"{e.threads} workers" for e in encoders))
    return {"name": name, "transforms": transforms, "codebooks": codebooks, "encoders": encoders,
            "times": [], "floors": []}


if __name__ == "__main__":
    sys.exit(main())
