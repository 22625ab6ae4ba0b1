"""cs_nets: classic CIFAR-10 classifiers written from scratch in NumPy.

The Python API, for notebooks and scripts (the same library calls the ``csnets``
commands make):

    import cs_nets

    config = cs_nets.load_config("configs/softmax.yaml", ["optim.learning_rate=5e-3"])
    result = cs_nets.run(config, "runs/softmax")        # train; result.test_accuracy
    cs_nets.resume("runs/softmax")                      # continue a stopped run
    report = cs_nets.evaluate("runs/softmax")           # accuracy, per class, confusion matrix
    trained = cs_nets.load_model("runs/softmax")         # trained.predict(["horse.jpg"]).names
    model, inputs, meta = trained                       # what the checkpoint holds

The lecture itself (layers, losses, update rules, models, gradient checking) is the
package ``cs_nets.nn``. Importing ``cs_nets`` loads nothing heavy: each function
imports what it needs when called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cs_nets.config import Config
    from cs_nets.evaluation.predict import TrainedModel
    from cs_nets.runs.task import RunResult

__version__ = "0.1.0"

Log = Callable[[str], None]


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read and validate a YAML config (None: all defaults) with ``section.key=value`` overrides.

    Raises cs_nets.errors.ConfigError naming the file, line and key for anything invalid.
    """
    from cs_nets.config import load_config as load

    return load(path, overrides)


def run(config: Config, out: str | Path | None = None, *, task: str = "train", data_dir: str | Path | None = None,
        overwrite: bool = False, plot: bool = False, progress: bool = False, log: Log | None = None) -> RunResult:
    """Train (task "train") or random-search (task "random_search") ``config`` into the run
    directory ``out`` (None: output.dir, else runs/<config name>-<time>), as ``csnets train``.

    plot (or the config's output.plot) also draws the run's PNGs (needs cs_nets[plot]).
    log: callable(str) for status lines. Returns a RunResult (run_dir, status, summary,
    test_accuracy). A folder that holds a run is refused unless ``overwrite``.
    """
    from cs_nets.plots import run_pictures
    from cs_nets.runs.task import run as run_task

    return run_task(config, out, task=task, data_dir=data_dir, overwrite=overwrite, progress=progress, log=log,
                    pictures=run_pictures(plot or config.output.plot))


def resume(run_dir: str | Path, *, data_dir: str | Path | None = None, plot: bool = False,
           progress: bool = False, log: Log | None = None) -> RunResult:
    """Continue a stopped or killed training run from its last saved epoch, with its own config.

    The result is bit-identical to a run that was never stopped; a finished run is left as it is.
    """
    from cs_nets.plots import run_pictures
    from cs_nets.runs.task import read_run_config
    from cs_nets.runs.task import resume as resume_task

    wanted = plot or read_run_config(run_dir).output.plot
    return resume_task(run_dir, data_dir=data_dir, progress=progress, log=log, pictures=run_pictures(wanted))


def evaluate(checkpoint: str | Path, split: str = "test", *, data_dir: str | Path | None = None,
             allow_other_data: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Score a run directory (or its model.npz) on a split of its own data, as ``csnets evaluate``.

    Returns {"split", "accuracy", "num_images", "per_class_accuracy", "confusion",
    "class_names", "data_fingerprint", "same_data"}.
    """
    from cs_nets.evaluation.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(checkpoint, split, data_dir=data_dir, allow_other_data=allow_other_data,
                               progress=False, log=log)


def load_model(checkpoint: str | Path) -> TrainedModel:
    """A run directory or model.npz, checked before use, ready to classify images.

    ``load_model(run).predict(images)``: images as uint8 (N, H, W, 3) (the image-library
    order), or a list of PIL images or file paths; CIFAR's flat rows only through
    ``predict_cifar_rows``. Returns class indices, names and probabilities (Softmax) or
    scores (SVM): see cs_nets.evaluation.predict. It still unpacks as
    ``model, inputs, meta = load_model(run)``: ``model.loss(inputs.transform(X))`` gives
    class scores; the metadata holds the run's config, class names and image size.
    """
    from cs_nets.evaluation.predict import TrainedModel

    return TrainedModel.load(checkpoint)


__all__ = ["__version__", "load_config", "run", "resume", "evaluate", "load_model"]
