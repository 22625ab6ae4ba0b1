"""Pictures of runs: training curves, learned templates, confusion matrix, sweeps.

matplotlib is optional (``pip install 'cs_nets[plot]'``) and imported only when a
plot is drawn, on the headless Agg backend. Every plot writes a PNG of a fixed
pixel size atomically and returns its path. ``weights_to_images`` and the other
helpers in ``images`` are pure NumPy.
"""

from cs_nets.plots.backend import require_matplotlib
from cs_nets.plots.confusion import plot_confusion
from cs_nets.plots.curves import plot_curves
from cs_nets.plots.images import weights_to_images
from cs_nets.plots.run import plot_run, run_pictures
from cs_nets.plots.sweep_heatmap import plot_sweep
from cs_nets.plots.templates import plot_templates

__all__ = [
    "plot_confusion",
    "plot_curves",
    "plot_run",
    "plot_sweep",
    "plot_templates",
    "require_matplotlib",
    "run_pictures",
    "weights_to_images",
]
