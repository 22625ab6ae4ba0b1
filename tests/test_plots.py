"""Tests for cs_nets.plots: pixel layout of templates, PNG sizes, missing matplotlib, sweeps."""

import struct
import subprocess
import sys

import numpy as np
import pytest

from cs_nets.errors import CsNetsError
from cs_nets.plots import (
    plot_confusion,
    plot_curves,
    plot_sweep,
    plot_templates,
    require_matplotlib,
    weights_to_images,
)
from cs_nets.plots.curves import batches_per_epoch, ema, smoothing_beta
from cs_nets.plots.images import pick_templates, tile_images
from cs_nets.plots.sweep_heatmap import sweep_table

NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MISSING = "plotting needs matplotlib: pip install 'cs_nets[plot]'"


def png_size(path):
    """(width, height) from the IHDR chunk of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def decoded(path):
    """The PNG decoded by matplotlib as (H, W, 4) floats; checks it is a real image."""
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def column(red=0.0, green=0.0, blue=0.0):
    """One CIFAR-order weight column (3072,) from three 32x32 planes (or scalars)."""
    planes = [np.broadcast_to(np.asarray(p, float), (32, 32)) for p in (red, green, blue)]
    return np.concatenate([p.ravel() for p in planes])


# ---- weights_to_images (pure NumPy) -------------------------------------------------------


def test_weights_to_images_puts_planes_in_channels_and_rows_in_order():
    rows = np.arange(32.0)[:, None] * np.ones((1, 32))  # value = row index
    spot = np.zeros((32, 32))
    spot[2, 5] = 7.0
    W = np.stack([column(red=1.0), column(green=rows), column(red=spot),
                  column(3.0, 3.0, 3.0)], axis=1)

    images = weights_to_images(W)

    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert np.all(images[0, ..., 0] == 255) and np.all(images[0, ..., 1:] == 0)
    green = images[1, ..., 1]
    assert np.array_equal(green[:, 0], np.rint(np.arange(32) * 255 / 31).astype(np.uint8))
    assert np.all(green == green[:, :1])  # constant along each row
    assert np.all(images[1, ..., [0, 2]] == 0)
    assert images[2, 2, 5, 0] == 255 and images[2].sum() == 255  # row-major: (row 2, col 5)
    assert not images[3].any()  # a constant column -> all zeros


def test_weights_to_images_rescales_each_column_on_its_own():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(3072)
    images = weights_to_images(np.stack([w, 1000 * w - 5], axis=1).astype(np.float32))
    assert np.array_equal(images[0], images[1])
    assert images[0].min() == 0 and images[0].max() == 255


@pytest.mark.parametrize("W", [np.zeros((3073, 10)), np.zeros(3072), np.full((3072, 2), np.nan)])
def test_weights_to_images_rejects_bad_weights(W):
    with pytest.raises(CsNetsError):
        weights_to_images(W)


def test_pick_templates_takes_largest_norms_first_and_keeps_ties_in_order():
    W = np.zeros((4, 6))
    W[0] = [1.0, 3.0, 2.0, 3.0, 0.5, 2.0]
    assert pick_templates(W, 4).tolist() == [1, 3, 2, 5]
    assert pick_templates(W, 100).tolist() == [1, 3, 2, 5, 0, 4]
    with pytest.raises(CsNetsError):
        pick_templates(W, 0)


def test_tile_images_lays_out_row_by_row_with_padding():
    images = np.arange(3, dtype=np.uint8).reshape(3, 1, 1, 1) + 1  # 1x1 tiles: 1, 2, 3
    mosaic = tile_images(images, ncols=2, pad=1, fill=0)
    assert mosaic[..., 0].tolist() == [[1, 0, 2], [0, 0, 0], [3, 0, 0]]


def test_ema_is_bias_corrected_skips_nan_and_smooths():
    assert np.allclose(ema([5.0, 5.0, 5.0], 0.9), 5.0)  # no pull towards 0 at the start
    assert ema([1.0, np.nan, 3.0], 0.0).tolist()[::2] == [1.0, 3.0]
    gap = ema([1.0, np.nan, 3.0], 0.5)  # NaN -> a gap; the average resumes after it
    assert np.isnan(gap[1]) and gap[2] == pytest.approx(7 / 3)
    noisy = np.tile([0.0, 2.0], 500)
    assert np.ptp(ema(noisy, smoothing_beta(noisy.size))[100:]) < 0.2
    assert smoothing_beta(50) == 0.0


def test_batches_per_epoch_finds_a_partial_last_epoch():
    rng = np.random.default_rng(0)
    losses = rng.uniform(1, 3, 3 * 10 + 4).astype(np.float32)  # stopped 4 batches into epoch 4
    rows = [{"epoch": e, "train_loss": float(losses[(e - 1) * 10: e * 10].mean())}
            for e in (1, 2, 3)]
    assert batches_per_epoch(losses, rows) == 10.0
    assert batches_per_epoch(losses[:30], rows) == 10.0
    assert batches_per_epoch(losses[:30], [{"epoch": e} for e in (1, 2, 3)]) == 10.0


# ---- sweep_table (pure NumPy) --------------------------------------------------------------


def grid_rows():
    """4 lr x 3 reg x 2 hidden sweep; lr=1e-1 with reg=1e-5 failed for both hidden sizes."""
    rows = []
    for lr in [1e-4, 1e-3, 1e-2, 1e-1]:
        for reg in [1e-5, 1e-4, 1e-3]:
            for hidden in [50, 100]:
                failed = lr == 1e-1 and reg == 1e-5
                score = 0.3 + (lr == 1e-3) * 0.1 + (reg == 1e-5) * 0.01 + hidden / 1e4
                rows.append({"params": {"optim.learning_rate": lr, "model.reg": reg,
                                        "model.hidden_size": hidden},
                             "val_accuracy": None if failed else score,
                             "status": "failed" if failed else "ok"})
    return rows


def test_sweep_table_picks_most_distinct_two_and_takes_max_over_the_rest():
    table = sweep_table(grid_rows())
    assert table.names == ["optim.learning_rate", "model.reg"]
    assert table.values == [[1e-4, 1e-3, 1e-2, 1e-1], [1e-5, 1e-4, 1e-3]]
    assert table.reduced == ["model.hidden_size"]
    assert table.scores.shape == (4, 3)
    assert table.scores[1, 0] == pytest.approx(0.3 + 0.1 + 0.01 + 0.01)  # hidden=100 wins
    assert table.scores[0, 2] == pytest.approx(0.3 + 0.01)
    assert np.isnan(table.scores[3, 0]) and table.tried[3, 0]  # failed -> blank cell
    assert np.isfinite(np.delete(table.scores.ravel(), 9)).all()
    assert len(table.points) == 22 and len(table.failed) == 2


def test_sweep_table_with_one_parameter_and_constant_ones_ignored():
    rows = [{"params": {"lr": lr, "seed": 0}, "val_accuracy": acc, "status": "ok"}
            for lr, acc in [(1e-3, 0.4), (1e-2, 0.3), (1e-3, 0.45)]]
    rows.append({"params": {"lr": 1e-1, "seed": 0}, "val_accuracy": float("nan"), "status": "ok"})
    table = sweep_table(rows)
    assert table.names == ["lr"] and table.values == [[1e-3, 1e-2, 1e-1]]
    assert table.scores[:2].tolist() == [0.45, 0.3] and np.isnan(table.scores[2])


def test_sweep_table_refuses_when_nothing_succeeded():
    rows = [{"params": {"lr": 1e-3}, "val_accuracy": None, "status": "ok"},
            {"params": {"lr": 1e-2}, "val_accuracy": 0.4, "status": "failed"}]
    with pytest.raises(CsNetsError, match="nothing to plot"):
        sweep_table(rows)
    with pytest.raises(CsNetsError, match="params"):
        sweep_table([{"val_accuracy": 0.4}])


# ---- missing matplotlib ---------------------------------------------------------------------


@pytest.mark.parametrize("module", ["matplotlib", "matplotlib.pyplot"])
def test_missing_matplotlib_gives_one_line_install_hint(monkeypatch, tmp_path, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(CsNetsError) as err:
        require_matplotlib()
    assert str(err.value) == MISSING
    with pytest.raises(CsNetsError, match="pip install"):
        plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "c.png")
    assert not list(tmp_path.iterdir())
    # The pure-NumPy helper still works without matplotlib.
    assert weights_to_images(np.ones((3072, 1))).shape == (1, 32, 32, 3)


def test_importing_the_package_does_not_import_matplotlib():
    code = "import sys, cs_nets.plots, cs_nets.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- the PNGs ------------------------------------------------------------------------------

pytest.importorskip("matplotlib")


def test_require_matplotlib_returns_headless_pyplot():
    plt = require_matplotlib()
    assert plt.get_backend().lower() == "agg"


def test_plot_curves_writes_1000x450_png(tmp_path):
    rng = np.random.default_rng(0)
    losses = (2.3 * np.exp(-np.arange(300) / 100) + 0.1 * rng.standard_normal(300))
    metrics = [{"epoch": e, "train_loss": float(losses[(e - 1) * 100: e * 100].mean()),
                "train_accuracy": 0.2 + 0.05 * e, "val_accuracy": 0.18 + 0.04 * e}
               for e in (1, 2, 3)]
    path = plot_curves(metrics, losses.astype(np.float32), tmp_path / "sub" / "curves.png",
                       title="run")
    assert path == tmp_path / "sub" / "curves.png"
    assert png_size(path) == (1000, 450) and decoded(path).shape == (450, 1000, 4)
    assert [p.name for p in path.parent.iterdir()] == ["curves.png"]  # no temp file left

    # Without batch losses, and without validation accuracy, it still draws.
    no_val = [{k: v for k, v in m.items() if k != "val_accuracy"} for m in metrics]
    assert png_size(plot_curves(no_val, None, tmp_path / "epochs.png")) == (1000, 450)
    assert png_size(plot_curves([], losses, tmp_path / "batches.png")) == (1000, 450)


def test_plot_curves_refuses_empty_or_malformed_input(tmp_path):
    with pytest.raises(CsNetsError, match="nothing to plot"):
        plot_curves([], np.array([]), tmp_path / "x.png")
    with pytest.raises(CsNetsError, match="epoch"):
        plot_curves([{"train_loss": 1.0}], None, tmp_path / "x.png")


def test_plot_templates_linear_shows_one_labeled_template_per_class(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3072, 10))
    W[:, 0] = column(red=1.0)
    path = plot_templates(W, NAMES, tmp_path / "templates.png")
    assert png_size(path) == (1000, 180)
    rgb = decoded(path)[..., :3]
    # The all-red class template reaches the PNG as pure red pixels.
    assert np.all(rgb == [1.0, 0.0, 0.0], axis=-1).sum() > 500


@pytest.mark.parametrize("side", [24, 40])
def test_plot_templates_draws_templates_of_any_square_size(tmp_path, side):
    rng = np.random.default_rng(side)
    W = rng.standard_normal((3 * side * side, 3))
    W[:, 1] = np.concatenate([np.ones(side * side), np.zeros(2 * side * side)])  # all red: (3, S, S) planes
    path = plot_templates(W, NAMES[:3], tmp_path / "templates.png")
    assert png_size(path) == (1000, 180)
    rgb = decoded(path)[..., :3]
    red = np.all(rgb == [1.0, 0.0, 0.0], axis=-1)
    # The red template fills its square cell: the red pixels span as many rows as columns.
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    assert red.sum() > 500 and abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 1
    assert weights_to_images(W, (3, side, side)).shape == (3, side, side, 3)
    with pytest.raises(CsNetsError, match=r"\(3\*S\*S, K\) for S x S colour images"):
        plot_templates(W[:-1], NAMES[:3], tmp_path / "bad.png")


def test_plot_templates_grid_for_first_layer(tmp_path):
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((3072, 300)).astype(np.float32)
    assert png_size(plot_templates(W1, NAMES, tmp_path / "w1.png")) == (1000, 1060)  # 10x10
    assert png_size(plot_templates(W1[:, :5], None, tmp_path / "w5.png")) == (1000, 260)
    first = (tmp_path / "w1.png").read_bytes()
    plot_templates(W1, NAMES, tmp_path / "w1.png")
    assert (tmp_path / "w1.png").read_bytes() == first  # deterministic, overwrite works


def test_plot_confusion_writes_700x650_png_and_validates(tmp_path):
    counts = np.full((10, 10), 20) + np.diag(np.full(10, 800))
    assert png_size(plot_confusion(counts, NAMES, tmp_path / "confusion.png")) == (700, 650)
    for bad, names in [(np.ones((2, 3), int), ["a", "b"]), (np.eye(2, dtype=int), ["a"]),
                       (-np.eye(2, dtype=int), ["a", "b"])]:
        with pytest.raises(CsNetsError):
            plot_confusion(bad, names, tmp_path / "bad.png")


def test_plot_sweep_with_one_two_and_three_parameters(tmp_path):
    rows = grid_rows()
    three = plot_sweep(rows, tmp_path / "three.png")
    two = plot_sweep([dict(r, params={k: v for k, v in r["params"].items()
                                      if k != "model.hidden_size"}) for r in rows[::2]],
                     tmp_path / "two.png")
    one = plot_sweep([{"params": {"optim.learning_rate": lr}, "val_accuracy": acc}
                      for lr, acc in [(1e-4, 0.3), (1e-3, 0.4), (1e-2, 0.35)]],
                     tmp_path / "one.png")
    for path in (three, two, one):
        assert png_size(path) == (800, 600) and decoded(path).shape == (600, 800, 4)


def test_plot_sweep_random_search_and_failures(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"params": {"lr": 10 ** rng.uniform(-5, -2), "reg": 10 ** rng.uniform(-5, -1)},
             "val_accuracy": float(rng.uniform(0.2, 0.4)), "status": "ok"} for _ in range(12)]
    rows[0]["status"] = "failed"
    assert png_size(plot_sweep(rows, tmp_path / "random.png")) == (800, 600)
    for row in rows:
        row["status"] = "failed"
    with pytest.raises(CsNetsError, match="nothing to plot"):
        plot_sweep(rows, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_unwritable_path_raises_csnets_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CsNetsError, match="cannot write"):
        plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "file" / "c.png")


# ---- decision regions of 2-D models ----------------------------------------------------------


def known_linear_model():
    """Class 0 left of x = 0, class 1 upper right, class 2 lower right; raw (x, y) inputs."""
    from cs_nets.data.pipeline import InputPipeline
    from cs_nets.data.preprocess import Normalizer
    from cs_nets.nn.models import build_model

    model = build_model("linear", 2, 3)
    model.params["W"][...] = [[-2, 1, 1], [0, 1, -1]]  # scores: -2x, x + y, x - y
    model.params["b"][...] = 0
    corners = np.array([[-1, -1], [1, 1], [1, -1], [-1, 1]], dtype=np.float32)
    inputs = InputPipeline([], Normalizer("none")).fit(corners)
    return model, inputs, corners


def test_region_grid_rows_go_up_and_columns_right():
    from cs_nets.plots.regions import pipeline_predictor, region_grid

    model, inputs, _ = known_linear_model()
    labels = region_grid(pipeline_predictor(model, inputs), (-1, 1, -1, 1), resolution=4)
    # pixel centres at ±0.25, ±0.75; row 0 is the bottom (y = -0.75)
    np.testing.assert_array_equal(labels, [[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 1, 1]])


def test_regions_picture_has_the_class_colour_at_known_points(tmp_path):
    from cs_nets.plots.regions import pipeline_predictor, plot_regions, region_colors

    model, inputs, corners = known_linear_model()
    path = plot_regions(pipeline_predictor(model, inputs), corners, np.array([0, 1, 2, 0]), tmp_path / "r.png",
                        title="known model")
    assert png_size(path) == (600, 600)
    image = decoded(path)[:, :, :3]
    colours = region_colors(3)
    # The plane is where the pixels have a region colour; its bounding box maps the data square.
    is_region = np.zeros(image.shape[:2], bool)
    for c in colours:
        is_region |= np.abs(image - c).max(axis=2) < 0.02
    rows, cols = np.nonzero(is_region)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    assert right - left > 300 and bottom - top > 300
    lo, hi = -1.2, 1.2  # the corners' square widened by 10% on each side

    def pixel(x, y):
        return image[round(bottom - (y - lo) / (hi - lo) * (bottom - top)),
                     round(left + (x - lo) / (hi - lo) * (right - left))]

    for (x, y), k in [((-0.6, 0.0), 0), ((-0.6, 0.7), 0), ((0.6, 0.6), 1), ((0.6, -0.6), 2), ((0.9, -0.1), 2)]:
        np.testing.assert_allclose(pixel(x, y), colours[k], atol=0.02, err_msg=f"at ({x}, {y})")
