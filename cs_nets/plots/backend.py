"""The optional matplotlib dependency: a headless pyplot, fixed-size figures, atomic PNGs.

matplotlib is imported here only inside functions, so ``import cs_nets`` works
without it and the CLI can say what to install.
"""

import pathlib

from cs_nets.errors import CsNetsError
from cs_nets.files.atomic import atomic_open

DPI = 100  # figure pixels = inches * DPI; every plot states its size in pixels
MISSING_MESSAGE = "plotting needs matplotlib: pip install 'cs_nets[plot]'"


def require_matplotlib():
    """Return ``matplotlib.pyplot`` on the Agg backend, or raise CsNetsError if missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # before pyplot: headless, same pixels on every machine
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise CsNetsError(MISSING_MESSAGE) from err
    return plt


def new_figure(plt, width_px, height_px):
    """A constrained-layout figure that saves to exactly ``width_px`` x ``height_px``."""
    # Agg truncates inches*dpi to int, and 29/100*100 == 28.999...; the half pixel
    # keeps the truncation from losing a row or column.
    size = ((width_px + 0.5) / DPI, (height_px + 0.5) / DPI)
    return plt.figure(figsize=size, dpi=DPI, layout="constrained")


def save_figure(plt, fig, path):
    """Write ``fig`` as a PNG at ``path`` atomically (temp file + os.replace); close it.

    Parent folders are created. Returns the path as a ``pathlib.Path``.
    """
    path = pathlib.Path(path)
    try:
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=DPI)
    except OSError as err:
        raise CsNetsError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        plt.close(fig)
    return path
