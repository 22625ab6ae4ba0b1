"""Benchmark `csnets predict`'s library path: images per second from files to predicted classes.

    python scripts/bench_predict.py                              # random pixels, a smoke model trained here
    python scripts/bench_predict.py --data-dir /tmp/cifar-dev --checkpoint runs/two_layer

1. Writes into a temporary folder (removed at the end unless --keep): --count PNG and
   --count JPEG files of 32x32 (the first CIFAR-10 test images of --data-dir, else
   random pixels), and --large-count JPEG and PNG files of 256x256 (the same images
   upsampled bicubically plus a little noise: photo-like, smooth with grain).
2. For each set, times what `csnets predict DIR --json` does (walk the folder, decode
   with the thread pool, score, build the per-file records with top-3), best of
   --repeats; prints images/s.
3. With --data-dir and a checkpoint trained on that CIFAR-10, also counts the 32x32 files
   whose prediction equals the model's on the same rows (what `csnets evaluate` scores:
   all of them for PNG) and states the accuracy on the PNG and on the JPEG copies.

Target (issue 20): >= 2,000 small (32x32) images per second on 2 cores. The numbers
depend on the machine's load: run it on an idle machine to compare.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def source_rows(data_dir, count, seed=0):
    """(count, 3072) uint8 CIFAR rows and their labels: the test split of data_dir (repeated if
    count is larger), else random pixels (labels None)."""
    if data_dir:
        from cs_nets.data.cifar10 import load_cifar10

        raw = load_cifar10(data_dir)
        reps = -(-count // len(raw.X_test))
        return np.concatenate([raw.X_test] * reps)[:count], np.concatenate([raw.y_test] * reps)[:count]
    return np.random.default_rng(seed).integers(0, 256, size=(count, 3072), dtype=np.uint8), None


def write_sets(folder: Path, rows: np.ndarray, large_count: int, seed=0) -> dict:
    from PIL import Image

    from cs_nets.data.images import from_cifar_rows

    images = from_cifar_rows(rows)
    rng = np.random.default_rng(seed)
    sets = {}
    for name, suffix, options in (("32x32 png", "png", {}), ("32x32 jpeg", "jpg", {"quality": 90})):
        sub = folder / name.replace(" ", "-")
        sub.mkdir()
        for i, im in enumerate(images):
            Image.fromarray(im).save(sub / f"{i:06d}.{suffix}", **options)
        sets[name] = sub
    for name, suffix, options in (("256x256 jpeg", "jpg", {"quality": 90}), ("256x256 png", "png", {})):
        sub = folder / name.replace(" ", "-")
        sub.mkdir()
        for i in range(large_count):
            big = np.asarray(Image.fromarray(images[i % len(images)]).resize((256, 256), Image.BICUBIC), np.int16)
            big = np.clip(big + rng.integers(-6, 7, size=big.shape), 0, 255).astype(np.uint8)
            Image.fromarray(big).save(sub / f"{i:06d}.{suffix}", **options)
        sets[name] = sub
    return sets


def time_set(trained, folder: Path, repeats: int, workers):
    from cs_nets.data.images import walk_images
    from cs_nets.evaluation.predict import predict_files

    best, indices = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        entries = walk_images([folder])
        records = [trained.file_record(r, 3) for r in predict_files(trained, entries, workers=workers)]
        best = min(best, time.perf_counter() - start)
        indices = [r["index"] for r in records]
    return len(entries), best, np.array(indices)


def smoke_checkpoint(folder: Path) -> Path:
    from cs_nets.config import load_config
    from cs_nets.runs.task import run

    out = folder / "smoke-run"
    run(load_config(ROOT / "configs" / "smoke.yaml"), out=out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="run directory or model.npz (default: train configs/smoke.yaml)")
    parser.add_argument("--data-dir", help="CIFAR-10 folder whose test images to write (default: random pixels)")
    parser.add_argument("--count", type=int, default=10_000, help="32x32 files per format")
    parser.add_argument("--large-count", type=int, default=1_000, help="256x256 files per format")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(4, cores))")
    parser.add_argument("--tmp", default=None, help="where to make the temporary folder (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    from cs_nets.evaluation.predict import TrainedModel

    folder = Path(tempfile.mkdtemp(prefix="bench_predict-", dir=args.tmp))
    try:
        checkpoint = args.checkpoint or smoke_checkpoint(folder)
        trained = TrainedModel.load(checkpoint)
        rows, labels = source_rows(args.data_dir, args.count)
        start = time.perf_counter()
        sets = write_sets(folder, rows, args.large_count)
        print(f"wrote the files in {time.perf_counter() - start:.1f} s to {folder} "
              f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
        for name, sub in sets.items():
            n, seconds, indices = time_set(trained, sub, args.repeats, args.workers)
            print(f"{name:>13}: {n:6d} files in {seconds:6.2f} s = {n / seconds:8.0f} images/s")
            if name.startswith("32x32") and args.data_dir and args.checkpoint:
                expected = trained.inputs.predict(trained.model, rows)  # what evaluate scores
                print(f"{'':>13}  same prediction as evaluate's on the rows: {int((indices == expected).sum())}"
                      f"/{len(rows)}; accuracy {np.mean(indices == labels):.4f} (evaluate's on the rows: "
                      f"{np.mean(expected == labels):.4f})")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
