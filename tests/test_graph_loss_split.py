"""The loss as the lecture writes it, L = data loss + regularization, split in models, trainer, runs and curves."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from cs_nets.cli import main
from cs_nets.config import OptimConfig, TrainConfig
from cs_nets.nn.losses import l2_penalty
from cs_nets.nn.models import build_model
from cs_nets.runs.reader import read_metrics
from cs_nets.training.trainer import fit

RNG = np.random.default_rng(2)
CASES = [
    ("linear", {"loss": "svm"}),
    ("linear", {"loss": "softmax"}),
    ("two_layer", {"hidden_dim": 8}),
    ("two_layer", {"hidden_dim": 8, "activation": "maxout", "maxout_pieces": 3}),
    ("fc_net", {"hidden_dims": [8, 6], "activation": "tanh", "loss": "svm"}),
]


@pytest.mark.parametrize(("model_type", "hyper"), CASES)
def test_loss_parts_sum_to_the_loss(model_type, hyper):
    model = build_model(model_type, 12, 10, dtype="float64", reg=0.3, **hyper)
    X, y = RNG.standard_normal((9, 12)), RNG.integers(10, size=9)
    loss, _ = model.loss(X, y)
    data, reg = model.loss_parts
    assert data + reg == loss
    weights = [p for name, p in model.params.items() if name.startswith("W")]
    assert reg == pytest.approx(l2_penalty(weights, 0.3), rel=1e-12) and reg > 0


@pytest.mark.parametrize("model_type", ["linear", "two_layer", "fc_net"])
def test_fresh_softmax_data_loss_is_ln_10_whatever_the_regularization(model_type):
    """The lecture's sanity check: small random weights give uniform scores, so L_data ≈ -ln(1/10)."""
    X, y = RNG.standard_normal((200, 3072)).astype(np.float32), RNG.integers(10, size=200)
    for reg in (0.0, 1e3):
        model = build_model(model_type, 3072, 10, loss="softmax", reg=reg, init=1e-3)
        loss, _ = model.loss(X, y)
        data, penalty = model.loss_parts
        assert data == pytest.approx(math.log(10), abs=0.01)
        assert loss == pytest.approx(math.log(10) + penalty, abs=0.01)
        assert (penalty > 1.0) == (reg > 0)  # reg 1000: the total says nothing about ln 10, the data part does


def test_trainer_records_both_parts_per_epoch():
    model = build_model("two_layer", 20, 3, hidden_dim=16, reg=0.05)
    X = RNG.standard_normal((300, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    result = fit(model, X, y, X[:50], y[:50], OptimConfig(learning_rate=0.05), TrainConfig(batch_size=50,
                 num_epochs=3), progress=False)
    for row in result.history:
        assert row["train_data_loss"] + row["train_reg_loss"] == pytest.approx(row["train_loss"], rel=1e-6)
        assert row["train_reg_loss"] > 0
    assert result.history[-1]["train_data_loss"] < result.history[0]["train_data_loss"]  # it learns


def test_run_writes_the_split_and_the_epoch_line_shows_it(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("data: {source: synthetic, synthetic_train: 600, synthetic_test: 100, num_val: 100}\n"
                      "model: {type: two_layer, hidden_dims: [16], loss: softmax, reg: 0.5}\n"
                      "train: {batch_size: 100, num_epochs: 2}\n")
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    epoch_lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for line, row in zip(epoch_lines, rows):
        assert f"loss {row['train_loss']:.4f} (data {row['train_data_loss']:.4f} + reg {row['train_reg_loss']:.4f})" \
            in line
    assert read_metrics(out)[0]["train_reg_loss"] == rows[0]["train_reg_loss"]


def test_curves_draw_data_reg_and_ln_c():
    plt = pytest.importorskip("matplotlib.pyplot")
    from cs_nets.plots.curves import _draw_loss

    rows = [{"epoch": e, "train_loss": 4.0 - e / 10, "train_data_loss": 2.3 - e / 10, "train_reg_loss": 1.7}
            for e in (1, 2, 3)]
    fig, ax = plt.subplots()
    _draw_loss(ax, rows, np.linspace(4, 3.6, 30), chance_loss=math.log(10))
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["epoch mean data loss"].get_ydata(), [2.2, 2.1, 2.0])
    np.testing.assert_allclose(lines["epoch mean L2 regularization"].get_ydata(), [1.7, 1.7, 1.7])
    chance = lines["ln C = 2.303: Softmax data loss at chance"]
    np.testing.assert_allclose(chance.get_ydata(), [math.log(10)] * 2)
    fig2, ax2 = plt.subplots()
    _draw_loss(ax2, [{"epoch": 1, "train_loss": 1.0}], np.ones(3))  # an old run: no split, no ln C
    assert {line.get_label() for line in ax2.get_lines()} == {"batch loss", "smoothed (EMA)", "epoch mean train loss"}
    plt.close(fig)
    plt.close(fig2)
