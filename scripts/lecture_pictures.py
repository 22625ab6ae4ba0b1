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
  activations.png     every activation of cs_nets and its derivative, computed
                      by its forward/backward pair (the activation-functions slide)

--only backprop / --only activations draws just those (no training, a second).

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


MAXOUT_PIECES_1D = ((1.0, 0.0), (-0.5, -0.5))  # (w, b) of the two pieces drawn: max(x, -0.5 x - 0.5)


def plot_activations(path):
    """One panel per activation: f(z) and f'(z) for z in [-4, 4], both from cs_nets' own forward/backward pair.

    Maxout has no single-input form: it is drawn as max(w1 z + b1, w2 z + b2) for the pieces in
    MAXOUT_PIECES_1D (dotted), whose slope is the winning piece's w (the max gate routes).
    """
    import numpy as np

    from cs_nets.nn.activations import ACTIVATION_NAMES
    from cs_nets.nn.layers import activation_backward, activation_forward
    from cs_nets.plots.backend import new_figure, save_figure

    plt = require_matplotlib()
    z = np.linspace(-4, 4, 801)
    fig = new_figure(plt, 1400, 620)
    axes = fig.subplots(2, 4).ravel()
    for ax, name in zip(axes, ACTIVATION_NAMES):
        if name == "maxout":  # z -> the pieces' pre-activations (N, 2*1), as the layer's affine part makes them
            (w1, b1), (w2, b2) = MAXOUT_PIECES_1D
            pre = np.stack([w1 * z + b1, w2 * z + b2], axis=1)
            for piece in pre.T:
                ax.plot(z, piece, ":", color="0.6", lw=1)
            a, cache = activation_forward(pre, name, pieces=2)
            dpre = activation_backward(np.ones_like(a), cache)       # 1 routed to the winning piece
            slope = dpre @ np.array([w1, w2])                       # chain rule through the pieces' w
            a = a[:, 0]
            title = "maxout: max(z, -0.5z - 0.5)"
        else:
            a, cache = activation_forward(z[:, None].copy(), name)
            slope = activation_backward(np.ones_like(a), cache)[:, 0]
            a = a[:, 0]
            title = name
        ax.axhline(0, color="0.85", lw=0.8)
        ax.axvline(0, color="0.85", lw=0.8)
        ax.plot(z, a, color="#0969da", lw=2, label="f(z)")
        ax.plot(z, slope, color="#cf222e", lw=1.5, ls="--", label="f'(z)")
        ax.set_title(title, fontsize=12)
        ax.set_ylim(-2.2, 4.2)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=11)
    axes[-1].axis("off")
    fig.suptitle("Activation functions (blue) and their derivatives (red, dashed), from cs_nets.nn.activations",
                 fontsize=13)
    return save_figure(plt, fig, path)


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
    parser.add_argument("--only", choices=["regions", "backprop", "activations"], help="draw one group of pictures")
    args = parser.parse_args(argv)
    require_matplotlib()  # fail before training, not after
    out = Path(args.out)
    if args.only in (None, "backprop"):
        for name in BACKPROP_EXAMPLES:
            csnets_command(["backprop", "--example", name, "--plot", str(out / f"backprop_{name}.png")], quiet=True)
    if args.only in (None, "activations"):
        print(f"wrote {plot_activations(out / 'activations.png')}")
    if args.only in ("backprop", "activations"):
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
