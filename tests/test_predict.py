"""`csnets predict` and TrainedModel.predict on models trained here on synthetic data."""

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_predict_images import png_header_only

from cs_nets.cli import main
from cs_nets.config import config_from_dict
from cs_nets.data.images import from_cifar_rows
from cs_nets.data.pipeline import load_images, split_of
from cs_nets.errors import ArgumentError, DataError
from cs_nets.evaluation.evaluate import evaluate_checkpoint
from cs_nets.evaluation.predict import TrainedModel, softmax
from cs_nets.runs.checkpoint import load_checkpoint

Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def softmax_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "softmax"
    result = run("train", "--config", SMOKE, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def svm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "svm"
    result = run("train", "--config", SMOKE, "--set", "model.type=linear", "--set", "model.loss=svm",
                 "--set", "train.num_epochs=2", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def split_rows_of(run_dir):
    """The run's test split rows (N, 3072) uint8 and labels, rebuilt as evaluate rebuilds them."""
    _, _, meta = load_checkpoint(run_dir)
    config = config_from_dict(meta["config"])
    raw, _ = load_images(config.data, config.seed, progress=False)
    parts = split_of(raw, config.data, config.seed)
    return parts.X_test, parts.y_test


@pytest.fixture(scope="module")
def test_pngs(softmax_run, tmp_path_factory):
    """The softmax run's whole test split written as PNG files 0000.png, 0001.png, ..."""
    rows, labels = split_rows_of(softmax_run)
    folder = tmp_path_factory.mktemp("pngs")
    for i, image in enumerate(from_cifar_rows(rows)):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return folder, rows, labels


def test_pngs_of_a_split_get_exactly_evaluates_predictions(softmax_run, test_pngs):
    folder, rows, labels = test_pngs
    result = run("predict", "--checkpoint", softmax_run, folder, "--json", "--top-k", "10")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    predicted = np.array([p["index"] for p in report["predictions"]])
    assert [Path(p["file"]).name for p in report["predictions"]] == [f"{i:04d}.png" for i in range(len(rows))]
    model, inputs, _ = load_checkpoint(softmax_run)
    assert np.array_equal(predicted, inputs.predict(model, rows))  # evaluate's own scoring of these rows
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    assert confusion.tolist() == evaluate_checkpoint(softmax_run, "test", progress=False)["confusion"]
    first = report["predictions"][0]
    assert report["kind"] == "probability" and len(first["top"]) == 10
    assert sum(t["probability"] for t in first["top"]) == pytest.approx(1.0, abs=1e-5)
    assert first["top"][0]["class"] == first["class"] and first["top"][0]["probability"] == first["probability"]


def test_the_python_api_agrees_with_the_files(softmax_run, test_pngs):
    folder, rows, _ = test_pngs
    trained = TrainedModel.load(softmax_run)
    model, inputs, _ = trained  # load_checkpoint's tuple is still there
    expected = inputs.predict(model, rows)
    by_rows = trained.predict_cifar_rows(rows)
    by_images = trained.predict(from_cifar_rows(rows))
    by_paths = trained.predict(sorted(folder.glob("*.png"))[:20])
    by_pil = trained.predict([Image.open(p) for p in sorted(folder.glob("*.png"))[:5]])
    assert np.array_equal(by_rows.indices, expected) and np.array_equal(by_images.indices, expected)
    assert np.array_equal(by_paths.indices, expected[:20]) and np.array_equal(by_pil.indices, expected[:5])
    assert by_images.names == [trained.class_names[i] for i in expected]
    assert np.allclose(by_images.probabilities, softmax(by_images.scores)) and by_images.kind == "probability"
    assert np.allclose(by_images.probabilities.sum(axis=1), 1.0)
    assert np.array_equal(by_images.confidence, by_images.probabilities.max(axis=1))
    top = by_images.top_k(3)[0]
    assert [name for name, _ in top][0] == by_images.names[0] and top[0][1] >= top[1][1] >= top[2][1]


@pytest.mark.parametrize("images, expected", [
    (np.zeros((4, 3072), np.uint8), "predict_cifar_rows"),                 # CIFAR rows: must be asked for by name
    (np.zeros((4, 3, 32, 32), np.uint8), "transpose(0, 2, 3, 1)"),         # channels first
    (np.zeros((32, 32, 3), np.uint8), "images[None]"),                     # one image without the batch axis
    (np.zeros((4, 64, 64, 3), np.uint8), "PIL images or paths"),           # another size
    (np.zeros((4, 32, 32, 3), np.float32), "dtype float32"),               # floats
    ("horse.png", "got str"),                                              # a bare path, not a list
])
def test_a_wrong_layout_is_an_error_naming_what_was_expected(softmax_run, images, expected):
    trained = TrainedModel.load(softmax_run)
    with pytest.raises(ArgumentError) as err:
        trained.predict(images)
    assert "uint8 images (N, 32, 32, 3) in height-width-channel order" in str(err.value)
    assert expected in str(err.value)


def test_predict_cifar_rows_refuses_images(softmax_run):
    with pytest.raises(ArgumentError, match=r"uint8 array \(N, 3072\)"):
        TrainedModel.load(softmax_run).predict_cifar_rows(np.zeros((2, 32, 32, 3), np.uint8))


def test_an_unreadable_path_in_a_list_names_the_file(softmax_run, tmp_path):
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(DataError, match="bad.png: not an image"):
        TrainedModel.load(softmax_run).predict([tmp_path / "bad.png"])


def test_svm_output_says_score(svm_run, test_pngs):
    folder, rows, _ = test_pngs
    files = sorted(folder.glob("*.png"))[:3]
    result = run("predict", "--checkpoint", svm_run, *files, "--top-k", "2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    trained = TrainedModel.load(svm_run)
    p = trained.predict(files)
    assert p.probabilities is None and p.kind == "score"
    for line, path, name, score in zip(lines, files, p.names, p.confidence):
        assert line.startswith(f"{path}: {name} score {score:.4f} (top 2: {name} {score:.4f}, ")


def test_text_output_lists_probability_and_top_k(softmax_run, test_pngs):
    folder, _, _ = test_pngs
    file = sorted(folder.glob("*.png"))[0]
    result = run("predict", "--checkpoint", softmax_run / "model.npz", file, "--top-k", "3")
    assert result.exit_code == 0
    p = TrainedModel.load(softmax_run).predict([file])
    (name, prob), second, third = p.top_k(3)[0]
    assert result.stdout == (f"{file}: {name} {prob:.4f} (top 3: {name} {prob:.4f}, {second[0]} {second[1]:.4f}, "
                             f"{third[0]} {third[1]:.4f})\n")


def test_csv_is_written_whole(softmax_run, test_pngs, tmp_path):
    folder, _, _ = test_pngs
    out = tmp_path / "preds.csv"
    result = run("predict", "--checkpoint", softmax_run, folder, "--csv", out, "--top-k", "2", "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["file", "class", "probability", "class_1", "probability_1", "class_2", "probability_2"]
    assert len(rows) == 1 + len(list(folder.glob("*.png")))
    assert rows[1][1] == rows[1][3] and float(rows[1][2]) == float(rows[1][4])
    assert not [p for p in tmp_path.iterdir() if p.name != "preds.csv"]  # no temporary left


def test_json_and_csv_together_is_a_usage_error(softmax_run, tmp_path):
    result = run("predict", "--checkpoint", softmax_run, tmp_path, "--json", "--csv", tmp_path / "x.csv")
    assert result.exit_code == 2 and not (tmp_path / "x.csv").exists()


def hostile_files(folder):
    """Every kind of unreadable file; the name says the kind."""
    import zipfile

    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not a picture")
    with zipfile.ZipFile(folder / "zip.png", "w") as zf:
        zf.writestr("a.txt", "a zip renamed .png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 77).save(folder / "truncated.png")
    (folder / "truncated.png").write_bytes((folder / "truncated.png").read_bytes()[:80])
    png_header_only(folder / "bomb.png", 60_000, 60_000)
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "loop")
    return {"empty.png": "empty", "text.jpg": "not an image", "zip.png": "not an image",
            "truncated.png": "cannot decode", "bomb.png": "decompression bomb", "loop": "directory loop"}


def test_hostile_files_are_one_line_each_and_the_others_are_predicted(softmax_run, test_pngs, tmp_path):
    folder, rows, _ = test_pngs
    for i in (0, 1):
        (tmp_path / f"good{i}.png").write_bytes((folder / f"{i:04d}.png").read_bytes())
    expected = hostile_files(tmp_path)
    result = run("predict", "--checkpoint", softmax_run, tmp_path, "--recursive", "--json")
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert errors[-1] == f"{len(expected)} of {len(expected) + 2} files could not be read"
    assert len(errors) == len(expected) + 1
    for name, reason in expected.items():
        line = [e for e in errors if f"/{name}: " in e]
        assert len(line) == 1 and reason in line[0] and line[0].startswith("error: "), (name, errors)
    report = json.loads(result.stdout)
    model, inputs, _ = load_checkpoint(softmax_run)
    assert [Path(p["file"]).name for p in report["predictions"]] == ["good0.png", "good1.png"]
    assert [p["index"] for p in report["predictions"]] == inputs.predict(model, rows[:2]).tolist()
    assert sorted(Path(f["file"]).name for f in report["failed"]) == sorted(expected)
    assert all(f["error"] for f in report["failed"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_one_line(softmax_run, test_pngs, tmp_path):
    folder, _, _ = test_pngs
    locked = tmp_path / "locked.png"
    locked.write_bytes((folder / "0000.png").read_bytes())
    locked.chmod(0)
    result = run("predict", "--checkpoint", softmax_run, locked, folder / "0001.png")
    assert result.exit_code == 1 and "locked.png: cannot read it" in result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_an_unreadable_file_is_one_line_even_as_root(softmax_run, test_pngs, tmp_path):
    """A FIFO stands in for a file that cannot be read: it must be refused, not block the run."""
    folder, _, _ = test_pngs
    os.mkfifo(tmp_path / "pipe.png")
    result = run("predict", "--checkpoint", softmax_run, tmp_path / "pipe.png", folder / "0001.png")
    assert result.exit_code == 1 and "pipe.png: not a regular file" in result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_without_pillow_one_line_says_what_to_install(softmax_run, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL` now raises ImportError
    result = run("predict", "--checkpoint", softmax_run, tmp_path)
    assert result.exit_code == 1
    assert result.stderr == "error: reading images needs Pillow: pip install 'cs_nets[images]'\n"


@pytest.mark.slow
def test_a_model_of_points_refuses_images(tmp_path):
    out = tmp_path / "toy"
    result = run("train", "--config", ROOT / "configs" / "toy_spiral.yaml", "--set", "train.num_epochs=1",
                 "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    result = run("predict", "--checkpoint", out, tmp_path)
    assert result.exit_code == 1 and "classifies 2-D points" in result.stderr


@pytest.mark.parametrize("value, expected", [
    (0, "meta image_size is 0, expected an integer from 1 to 512"),
    ("32", "meta image_size is '32'"),
    (16, "meta image_size is 16, expected the side of the images its 3072 raw-pixel inputs hold"),
])
def test_a_checkpoint_with_a_bad_image_size_is_refused(softmax_run, tmp_path, value, expected):
    import json as json_module

    with np.load(softmax_run / "model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json_module.loads(str(arrays["meta"]))
    assert meta["image_size"] == 32  # recorded by training
    meta["image_size"] = value
    arrays["meta"] = np.array(json_module.dumps(meta))
    np.savez(tmp_path / "model.npz", **arrays)
    with pytest.raises(DataError) as err:
        TrainedModel.load(tmp_path / "model.npz")
    assert expected in str(err.value)


def test_the_public_load_model_predicts_and_still_unpacks(softmax_run, test_pngs):
    import cs_nets

    folder, rows, _ = test_pngs
    trained = cs_nets.load_model(softmax_run)
    model, inputs, meta = trained
    assert meta["image_size"] == 32 and trained.class_names == meta["class_names"]
    assert np.array_equal(trained.predict(from_cifar_rows(rows[:50])).indices, inputs.predict(model, rows[:50]))
