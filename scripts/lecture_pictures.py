"""The lecture's pictures of capacity and regularization, as PNG grids of decision regions.

    python scripts/lecture_pictures.py --out pictures/

Trains with `csnets train` itself (the same command, config and run directory as
any run; in this process, through the CLI's entry point) and draws each run's
decision regions over its training points with cs_nets.plots.regions:

  capacity.png        configs/toy_spiral.yaml with 3, 6 and 20 hidden units:
                      "more neurons = more capacity"
  regularization.png  the same data, 100 hidden units, reg 0.001, 0.01 and 0.1:
                      "do not use size of neural network as a regularizer,
                      use stronger regularization instead"
  features.png        configs/toy_circles.yaml in (x, y) and in (r, θ): the
                      feature-transform slide
  backprop_<name>.png the lecture's circuits (`csnets backprop --example NAME
                      --plot`): values above, gradients below every wire

--only backprop draws just the circuits (no training, a second).

Each panel is titled with its setting and the accuracy on all its training
points. The runs stay in --runs (default runs/lecture_pictures; csnets plot and
evaluate work on them). About 30 s on 2 cores. Needs matplotlib (pip install '.[plot]').
"""

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

from cs_nets.cli import main as csnets
from cs_nets.plots import require_matplotlib
from cs_nets.plots.regions import plot_region_grid, run_panel
from cs_nets.registry import BACKPROP_EXAMPLES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# (picture, title, [(panel label, config, overrides)])
PICTURES = [
    ("capacity.png", "Two-layer net on the same spiral: more neurons = more capacity",
     [(f"{h} hidden units", "toy_spiral.yaml", [f"model.hidden_dim={h}"]) for h in (3, 6, 20)]),
    ("regularization.png", "100 hidden units: stronger regularization gives smoother regions",
     [(f"λ = {reg}", "toy_spiral.yaml", ["model.hidden_dim=100", f"model.reg={reg}"]) for reg in (0.001, 0.01, 0.1)]),
    ("features.png", "Linear Softmax on two rings: (x, y) against f(x, y) = (r, θ)",
     [("linear on (x, y)", "toy_circles.yaml", []), ("linear on (r, θ)", "toy_circles_polar.yaml", [])]),
]


def csnets_command(args, quiet=False):
    """`csnets ARGS` in this process; its printed table is dropped when quiet (the "wrote" line stays)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext() as captured:
            csnets.main(args, prog_name="csnets", standalone_mode=False)
    except SystemExit as stop:  # click's exits (errors, interrupts) end the script with their code
        if stop.code:
            raise
    if quiet:
        print(captured.getvalue().strip().splitlines()[-1])


def train(config, overrides, out):
    """`csnets train --config CONFIG --set ... --out OUT --quiet`, in this process."""
    args = ["train", "--config", str(CONFIGS / config), "--out", str(out), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    csnets_command(args)
    if not (out / "summary.json").exists():
        raise SystemExit(f"error: csnets {' '.join(args)} did not finish")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="pictures", help="folder for the PNGs (default: pictures)")
    parser.add_argument("--runs", default="runs/lecture_pictures",
                        help="folder for the run directories (default: runs/lecture_pictures)")
    parser.add_argument("--only", choices=["regions", "backprop"], help="draw one group of pictures")
    args = parser.parse_args(argv)
    require_matplotlib()  # fail before training, not after
    out = Path(args.out)
    if args.only in (None, "backprop"):
        for name in BACKPROP_EXAMPLES:
            csnets_command(["backprop", "--example", name, "--plot", str(out / f"backprop_{name}.png")], quiet=True)
    if args.only == "backprop":
        return 0
    for picture, title, settings in PICTURES:
        panels = []
        for label, config, overrides in settings:
            run_dir = Path(args.runs) / f"{Path(picture).stem}-{len(panels) + 1}"
            start = time.perf_counter()
            train(config, overrides, run_dir)
            panels.append(run_panel(run_dir, label))
            print(f"{picture}: {label}: train accuracy {panels[-1]['train_accuracy']:.3f} "
                  f"({time.perf_counter() - start:.1f} s, {run_dir})")
        print(f"wrote {plot_region_grid(panels, out / picture, title=title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
