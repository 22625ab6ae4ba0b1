"""The `csnets` command group. Each command parses options, calls library code, formats the result.

Exit codes: 0 success, 1 runtime failure (data, download, diverged training),
2 usage or config error, 130 interrupted. A user mistake never shows a
traceback unless `csnets --debug ...` is given.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import click
import numpy as np

from cs_nets.errors import CsNetsError

_DATA_DIR_HELP = "data folder (default: data.dir, else $CS_NETS_DATA, else ~/.cache/cs_nets)"


class _Group(click.Group):
    """Turns library errors into one line on stderr and the right exit code."""

    def invoke(self, ctx):
        debug = ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except CsNetsError as err:
            if debug:
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)
        except OSError as err:  # disk full, permission denied, ...: the user's to fix, not a bug
            if debug:
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _log(message: str) -> None:
    click.echo(message, err=True)


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.version_option(package_name="cs_nets")
def main(debug):
    """Train and evaluate classic CIFAR-10 classifiers written in NumPy.

    \b
    Example:
      csnets train --config configs/two_layer.yaml
    """


# --------------------------------------------------------------------------- data


@main.command()
@click.option("--data-dir", help=_DATA_DIR_HELP)
@click.option("--format", "fmt", type=click.Choice(["python", "binary"]), default="python", show_default=True,
              help="archive layout")
@click.option("--url", help="archive URL of a mirror")
@click.option("--md5", help="expected MD5 of the archive (default: the official one; none with --url)")
@click.option("--force", is_flag=True, help="download and extract again even if the data is there")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def download(data_dir, fmt, url, md5, force, quiet):
    """Download, verify and extract CIFAR-10.

    \b
    Example:
      csnets download --data-dir ~/data/cifar10
      csnets download --url http://127.0.0.1:8765/cifar-10-python.tar.gz --md5 b9f9...
    """
    from cs_nets.data.cifar10 import OFFICIAL, download_cifar10, resolve_data_dir

    spec = OFFICIAL[fmt]
    if url is None:
        md5 = md5 or spec.md5
    download_cifar10(resolve_data_dir(data_dir), fmt=fmt, url=url or spec.url, md5=md5,
                     force=force, progress=_progress(quiet), log=None if quiet else _log)


@main.command()
@click.option("--data-dir", help=_DATA_DIR_HELP)
def info(data_dir):
    """Show what is on disk: layouts, split sizes, images per class, checksums.

    \b
    Example:
      csnets info --data-dir ~/data/cifar10
    """
    from cs_nets.data.cifar10 import describe, resolve_data_dir

    report = describe(resolve_data_dir(data_dir))
    click.echo(_format_info(report))


def _format_info(report: dict) -> str:
    """The describe() report as a short text: layouts, sizes, images per class, checksums."""
    present = []
    for fmt, where in report["layouts"].items():
        kinds = [kind for kind in ("extracted", "archive") if where.get(kind)]
        if kinds:
            present.append(f"{fmt} ({', '.join(kinds)})")
    lines = [f"data folder: {report['data_dir']}",
             f"layouts on disk: {'; '.join(present) or 'none'}",
             f"loaded: {report['layout']} from {report['source']} in {report['load_seconds']:.3f} s",
             f"images: {report['num_train']} train, {report['num_test']} test",
             f"{'class':<12} {'train':>7} {'test':>7}"]
    for name in report["class_names"]:
        lines.append(f"{name:<12} {report['per_class']['train'].get(name, 0):>7} "
                     f"{report['per_class']['test'].get(name, 0):>7}")
    lines.append("checksums against the official files:")
    width = max((len(path) for path in report["checksums"]), default=0)
    for path, check in report["checksums"].items():
        verdict = {True: "matches", False: f"differs (found {check['found']})",
                   None: "no official checksum"}[check["match"]]
        lines.append(f"  {path:<{width}}  {verdict}")
    lines.append(f"fingerprint: {report['fingerprint']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- models


@main.command()
@click.option("--model", "models", type=click.Choice(["linear", "two_layer", "fc_net"]), multiple=True,
              help="model to check (repeatable; default: all)")
@click.option("--loss", "losses", type=click.Choice(["svm", "softmax"]), multiple=True,
              help="loss to check (repeatable; default: both)")
@click.option("--activation", "activations", multiple=True,
              type=click.Choice(["relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu"]),
              help="activation to check (repeatable; default: all)")
def gradcheck(models, losses, activations):
    """Compare analytic gradients with centered differences on small float64 data.

    Exits 0 when every max relative error is below 1e-6, else 1.

    \b
    Example:
      csnets gradcheck --model two_layer --loss softmax --activation gelu
    """
    from cs_nets.gradcheck import gradcheck_cases

    rows = gradcheck_cases(models=list(models) or None, losses=list(losses) or None,
                           activations=list(activations) or None)
    click.echo(f"{'model':<10} {'loss':<8} {'activation':<11} {'param':<6} {'max rel error':>13}")
    worst = 0.0
    for row in rows:
        flag = "" if row["max_rel_error"] < 1e-6 else "  FAIL"
        click.echo(f"{row['model']:<10} {row['loss']:<8} {row['activation']:<11} {row['param']:<6} "
                   f"{row['max_rel_error']:>13.2e}{flag}")
        worst = max(worst, row["max_rel_error"])
    click.echo(f"{len(rows)} checks, worst relative error {worst:.2e}")
    if not worst < 1e-6:
        raise CsNetsError(f"gradient check failed: worst relative error {worst:.2e} >= 1e-6")


# --------------------------------------------------------------------------- training

_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
                              help="YAML config file")
_set_option = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                           help="override a config key (value read as YAML; repeatable)")
_out_option = click.option("--out", help="run directory (default: output.dir, else runs/<config>-<time>)")
_data_dir_option = click.option("--data-dir", help=_DATA_DIR_HELP)
_quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress bars or per-epoch lines")


def _model_hyperparams(model_cfg) -> dict:
    """The ModelConfig keys that the chosen model type takes."""
    hyper = {"loss": model_cfg.loss, "reg": model_cfg.reg}
    if model_cfg.type == "two_layer":
        hyper.update(hidden_dim=model_cfg.hidden_dim, activation=model_cfg.activation)
    elif model_cfg.type == "fc_net":
        hyper.update(hidden_dims=list(model_cfg.hidden_dims), activation=model_cfg.activation)
    if model_cfg.init is not None:
        hyper["init"] = model_cfg.init
    return hyper


def _start_run(config_path, overrides, out, data_dir, quiet):
    """Shared start of train and random-search: config, run directory, data."""
    from cs_nets.config import load_config
    from cs_nets.memory import check_fits
    from cs_nets.pipeline import prepare_dataset
    from cs_nets.runs import RunWriter, resolve_run_dir

    config = load_config(config_path, list(overrides))
    check_fits(config)  # refuse a run that cannot fit in memory before downloading or allocating
    log = (lambda m: None) if quiet else _log
    data = prepare_dataset(config, data_dir, progress=_progress(quiet), log=log)
    # The run directory appears only once the data is there: a failed download leaves none.
    writer = RunWriter(resolve_run_dir(out, config))
    writer.write_config(config)
    log(f"data: {len(data.y_train)} train, {len(data.y_val)} val, {len(data.y_test)} test, "
        f"{data.X_train.shape[1]} inputs ({data.X_train.dtype}); run directory {writer.path}")
    return config, writer, data, log


def _finish_run(writer, config, model, data, overrides, extra: dict, plot: bool, log) -> float:
    """Save the model, score every split, write summary.json (and pictures); return test accuracy."""
    from cs_nets.checkpoint import save_checkpoint
    from cs_nets.metrics import accuracy_of, confusion_matrix
    from cs_nets.trainer import accuracy

    num_classes = len(data.class_names)
    save_checkpoint(writer.path / "model.npz", model, data.inputs,
                    meta={"class_names": data.class_names, "config": config.to_dict()})
    confusion = confusion_matrix(data.y_test, model.predict(data.X_test), num_classes)
    summary = {
        "model": config.model.type,
        "test_accuracy": accuracy_of(confusion),
        "val_accuracy": accuracy(model, data.X_val, data.y_val),
        "train_accuracy": accuracy(model, data.X_train[:config.train.train_eval_size],
                                   data.y_train[:config.train.train_eval_size]),
        **extra,
        "overrides": list(overrides),
        "command": shlex.join(["csnets", *sys.argv[1:]]),
        "class_names": data.class_names,
        "test_confusion": confusion.tolist(),
    }
    writer.write_summary(summary)
    if plot:
        from cs_nets.plots import plot_run

        written = plot_run(writer.path)
        log(f"pictures: {', '.join(str(p) for p in written)}")
    return summary["test_accuracy"]


@main.command()
@_config_option
@_set_option
@_out_option
@_data_dir_option
@click.option("--plot", is_flag=True, help="write the PNG pictures at the end (needs cs_nets[plot])")
@_quiet_option
def train(config_path, overrides, out, data_dir, plot, quiet):
    """Train a model with minibatch SGD; keep the best on validation; test once.

    The last line printed is `test accuracy: 0.xxxx`.

    \b
    Example:
      csnets train --config configs/two_layer.yaml --set optim.learning_rate=5e-4 --out runs/tl
    """
    from cs_nets.models import build_model
    from cs_nets.trainer import train as run_training

    config, writer, data, log = _start_run(config_path, overrides, out, data_dir, quiet)
    if plot or config.output.plot:
        from cs_nets.plots import require_matplotlib

        require_matplotlib()  # fail before training, not after
    model = build_model(config.model.type, data.X_train.shape[1], len(data.class_names),
                        dtype=config.data.dtype, seed=config.seed, **_model_hyperparams(config.model))

    def on_epoch(m):
        writer.add_metrics(m)
        log(f"epoch {m['epoch']:>3}/{config.train.num_epochs}  loss {m['train_loss']:.4f}  "
            f"train {m['train_accuracy']:.4f}  val {m['val_accuracy']:.4f}  lr {m['lr']:.2e}  {m['seconds']:.1f}s")

    # A diverging run overflows before its loss turns NaN; the trainer reports that in one line.
    with np.errstate(over="ignore", invalid="ignore"):
        result = run_training(model, data.X_train, data.y_train, data.X_val, data.y_val, config.optim,
                              config.train, seed=config.seed, progress=_progress(quiet), on_epoch=on_epoch)
    writer.write_array("batch_losses.npy", result.batch_losses)
    extra = {"epochs": len(result.history), "best_epoch": result.best_epoch,
             "train_seconds": result.train_seconds, "status": result.status}
    test_acc = _finish_run(writer, config, model, data, overrides, extra,
                           plot or config.output.plot, log)
    if result.status == "diverged":
        raise CsNetsError(f"{result.message}; the best parameters so far are in {writer.path}")
    if result.status == "interrupted":
        click.echo(f"{result.message}; saved to {writer.path}", err=True)
        sys.exit(130)
    if result.message:
        log(result.message)
    click.echo(f"test accuracy: {test_acc:.4f}")


@main.command("random-search")
@_config_option
@_set_option
@_out_option
@_data_dir_option
@_quiet_option
def random_search_command(config_path, overrides, out, data_dir, quiet):
    """The lecture's "Strategy #1": try random weights, keep the best by training loss.

    \b
    Example:
      csnets random-search --config configs/random_search.yaml --set search.attempts=200
    """
    from tqdm import tqdm

    from cs_nets.search import random_search

    config, writer, data, log = _start_run(config_path, overrides, out, data_dir, quiet)
    search = config.search
    bar = tqdm(total=search.attempts, desc="random search", unit="W", disable=not _progress(quiet),
               file=sys.stderr)

    def progress(attempt, best_loss):
        bar.n = attempt + 1
        bar.set_postfix(best_loss=f"{best_loss:.4f}", refresh=False)
        bar.refresh()

    start = time.perf_counter()
    result = random_search(data.X_train, data.y_train, attempts=search.attempts, scale=search.scale,
                           loss=config.model.loss, subsample=search.subsample, seed=config.seed,
                           num_classes=len(data.class_names), progress=progress)
    seconds = time.perf_counter() - start
    bar.close()
    writer.add_metrics({"epoch": 1, "train_loss": float(result.best_loss), "train_accuracy": None,
                        "val_accuracy": None, "lr": None, "seconds": seconds})
    writer.write_array("search_losses.npy", result.losses)
    extra = {"model": "random_search", "epochs": 1, "train_seconds": seconds, "status": "completed",
             "best_loss": float(result.best_loss), "best_attempt": int(result.best_attempt)}
    log(f"best loss {result.best_loss:.4f} at attempt {result.best_attempt + 1}/{search.attempts}")
    test_acc = _finish_run(writer, config, result.model, data, overrides, extra, False, log)
    click.echo(f"test accuracy: {test_acc:.4f}")


# --------------------------------------------------------------------------- results


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True),
              help="run directory or model.npz")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@_data_dir_option
@click.option("--url", help="archive URL of a mirror, if the data must be downloaded (default: the official one)")
@click.option("--md5", help="expected MD5 of the archive at --url")
@click.option("--allow-other-data", is_flag=True,
              help="score data that differs from the data the model was trained on")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@_quiet_option
def evaluate(checkpoint, split, data_dir, url, md5, allow_other_data, as_json, quiet):
    """Accuracy, per-class accuracy and confusion matrix of a saved model.

    Uses the preprocessing stored in the checkpoint, so the test split
    reproduces the run's test_accuracy exactly. The data comes from --data-dir
    (else $CS_NETS_DATA, else ~/.cache/cs_nets) and, if missing, from --url or
    the official archive: never from a folder or URL stored in the checkpoint.
    Data other than the training data is refused unless --allow-other-data.

    \b
    Example:
      csnets evaluate --checkpoint runs/two_layer-20260101-120000 --split val
    """
    from cs_nets.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, split, data_dir, url=url, md5=md5, allow_other_data=allow_other_data,
                                 progress=_progress(quiet), log=(lambda m: None) if quiet else _log)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    names = result["class_names"]
    click.echo(f"{split} accuracy: {result['accuracy']:.4f} on {result['num_images']} images")
    width = max(len(n) for n in names)
    click.echo(f"{'class':<{width}}  accuracy   confusion row (predicted: {' '.join(n[:4] for n in names)})")
    for name, row in zip(names, result["confusion"]):
        acc = result["per_class_accuracy"][name]
        click.echo(f"{name:<{width}}  {acc:8.4f}   {' '.join(f'{c:4d}' for c in row)}")


@main.command()
@click.argument("sweep_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="also write the table as CSV")
@click.option("--plot", is_flag=True, help="also write sweep.png: validation accuracy over the swept values")
def summarize(sweep_dir, csv_path, plot):
    """Table of the runs in a folder, best validation accuracy first.

    Every run is a row, with its status: completed, early_stopped, diverged,
    interrupted, failed, running, killed (its process is gone), corrupt (an
    unreadable summary.json), incomplete (no summary). Unfinished runs show the
    best validation accuracy of their epochs so far.

    \b
    Example:
      csnets summarize sweeps/two_layer-20260101-120000 --csv results.csv
    """
    from cs_nets.runs import FINISHED, collect_runs

    rows = collect_runs(sweep_dir)
    keys = sorted({k for row in rows for k in row["params"]})
    # No test accuracy here: a sweep chooses on validation, and the test split stays unseen until the end.
    columns = ["run", "status", *keys, "val_accuracy", "train_accuracy", "epochs", "train_seconds"]
    table = [[_cell(row["params"].get(c) if c in keys else row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    for r in [columns, *table]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    best = next((row for row in rows if row["status"] in FINISHED and row["val_accuracy"] is not None), None)
    if best is not None:
        click.echo(f"best: {best['run']} (val accuracy {best['val_accuracy']:.4f}): {best['command']}")
    if csv_path:
        import csv

        from cs_nets.fileio import atomic_open

        with atomic_open(csv_path, "w") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(table)
    if plot:
        from cs_nets.plots import plot_sweep

        sweep_rows = [{"params": r["params"], "val_accuracy": r["val_accuracy"],
                       "status": "ok" if r["status"] in FINISHED else "failed"} for r in rows]
        path = plot_sweep(sweep_rows, Path(sweep_dir) / "sweep.png")
        click.echo(f"wrote {path}")


def _cell(value) -> str:
    from cs_nets.untrusted import clip_text

    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if 0.001 <= abs(value) < 1000 or value == 0 else f"{value:.3g}"
    return clip_text(" ".join(str(value).split()), 40)  # one short cell, whatever a run directory holds


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="folder for the PNGs (default: RUN_DIR)")
def plot(run_dir, out_dir):
    """Pictures of a run: loss and accuracy curves, learned templates, confusion matrix.

    \b
    Example:
      csnets plot runs/linear_svm-20260101-120000 --out pictures/
    """
    from cs_nets.plots import plot_run

    for path in plot_run(run_dir, out_dir):
        click.echo(f"wrote {path}")
