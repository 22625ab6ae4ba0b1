"""The `csnets` command group. Each command parses options, calls library code, formats the result.

Exit codes: 0 success, 1 runtime failure (data, download, diverged training, a full
disk), 2 usage or config error, 128 + the signal for a stopped run (130 Ctrl-C,
143 SIGTERM, 129 SIGHUP). A user mistake never shows a traceback unless
`csnets --debug ...` is given; an unexpected error (a bug) does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

import click

from cs_nets import registry
from cs_nets.errors import CsNetsError

# Failures of the machine rather than of cs_nets or the user's input: the user's to fix
# (free space, permissions), so one line. Input files are checked where they are read.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO,
                            errno.EMFILE, errno.ENFILE})

_DATA_DIR_HELP = "data folder (default: data.dir, else $CS_NETS_DATA, else ~/.cache/cs_nets)"
_PLAIN_DATA_DIR_HELP = "data folder (default: $CS_NETS_DATA, else ~/.cache/cs_nets)"  # commands without a config


class _Group(click.Group):
    """Turns library errors into one line on stderr and the right exit code."""

    def main(self, *args, **kwargs):
        _guard_std_streams()
        try:
            os.getcwd()
        except FileNotFoundError:  # every relative path (runs/, --out, --config) would point nowhere
            _echo("error: the current working directory no longer exists (deleted?): cd to an existing folder",
                  err=True)
            sys.exit(2)
        return super().main(*args, **kwargs)

    def invoke(self, ctx):
        debug = ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except CsNetsError as err:
            if debug:
                raise
            _echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)
        except BrokenPipeError:  # the reader of our output went away (`csnets ... | head`): nothing to say
            _echo("", err=False)
            ctx.exit(0)
        except OSError as err:
            if debug or err.errno not in MACHINE_ERRNOS:  # e.g. a FileNotFoundError of a bug: show it
                raise
            _echo(f"error: {err}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            _echo("interrupted", err=True)
            ctx.exit(130)


def _guard_std_streams() -> None:
    """Make a closed stdout or stderr (`csnets ... >&-`, `2>&-`) harmless; messages go to the stream left.

    A closed descriptor 0, 1 or 2 is reopened on /dev/null first: otherwise the next file the
    run opens would get that number, and anything written to "stderr" (by Python or a C
    library) would land inside a run's file. Python starts with sys.stdout or sys.stderr None
    then; each is pointed at the other stream, or at /dev/null when both are closed.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:  # lower descriptors are open, so os.open took this one; else move it
                os.dup2(devnull, fd)
                os.close(devnull)
    if sys.stdout is None and sys.stderr is None:
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    elif sys.stdout is None:
        sys.stdout = sys.stderr
    elif sys.stderr is None:
        sys.stderr = sys.stdout


def _echo(message: str, err: bool = False) -> None:
    """click.echo that survives a closed pipe: `csnets ... | head` must not kill a run.

    On EPIPE the stream's file descriptor is pointed at /dev/null, so this and every
    later write (and the flush at exit) quietly go nowhere.
    """
    stream = sys.stderr if err else sys.stdout
    try:
        click.echo(message, err=err)
        stream.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _log(message: str) -> None:
    _echo(message, err=True)


def _logger(quiet: bool):
    return (lambda message: None) if quiet else _log


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def _stoppable():
    """SIGTERM/SIGHUP act as Ctrl-C inside; an interruption outside the trainer exits 128 + signal."""
    from cs_nets.runs.signals import stop_signals_as_interrupt

    with stop_signals_as_interrupt() as signals:
        try:
            yield signals
        except KeyboardInterrupt:
            _echo("interrupted", err=True)
            sys.exit(signals.exit_code())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    _echo(f"warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.version_option(package_name="cs_nets")
def main(debug):
    """Train and evaluate classic CIFAR-10 classifiers written in NumPy.

    \b
    Example:
      csnets train --config configs/two_layer.yaml
    """
    warnings.showwarning = _show_warning  # e.g. a deprecated config key: one line, not a stack


# --------------------------------------------------------------------------- data


@main.command()
@click.option("--data-dir", help=_PLAIN_DATA_DIR_HELP)
@click.option("--format", "fmt", type=click.Choice(registry.ARCHIVE_FORMATS), default="python", show_default=True,
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
    from cs_nets.data.cifar10 import download_cifar10, resolve_data_dir

    download_cifar10(resolve_data_dir(data_dir), fmt=fmt, url=url, md5=md5,
                     force=force, progress=_progress(quiet), log=None if quiet else _log)


@main.command()
@click.option("--data-dir", help=_PLAIN_DATA_DIR_HELP)
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
@click.option("--model", "models", type=click.Choice(registry.MODEL_TYPES), multiple=True,
              help="model to check (repeatable; default: all)")
@click.option("--loss", "losses", type=click.Choice(registry.LOSSES), multiple=True,
              help="loss to check (repeatable; default: both)")
@click.option("--activation", "activations", multiple=True, type=click.Choice(registry.ACTIVATIONS),
              help="activation to check (repeatable; default: all)")
def gradcheck(models, losses, activations):
    """Compare analytic gradients with centered differences on small float64 data.

    Exits 0 when every max relative error is below 1e-6, else 1.

    \b
    Example:
      csnets gradcheck --model two_layer --loss softmax --activation gelu
    """
    from cs_nets.nn.gradcheck import gradcheck_cases

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


@main.command()
@click.argument("expression", required=False)
@click.option("--at", "assignments", multiple=True, metavar="NAME=VALUE",
              help="value of an input: a number or a list, e.g. x=-2 or \"W=[[0.1,0.5],[-0.3,0.8]]\" (repeatable)")
@click.option("--example", type=click.Choice(registry.BACKPROP_EXAMPLES),
              help="a circuit of the lecture with its values (--at still overrides them)")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="also draw the circuit as a PNG, values above and gradients below each wire (needs cs_nets[plot])")
@click.option("--dot", is_flag=True, help="print Graphviz DOT instead of the table")
def backprop(expression, assignments, example, plot_path, dot):
    """Run backprop through an expression and show every node's value and gradient.

    Allowed: numbers, input names, + - * / ** @, unary -, and sigmoid exp log tanh relu square sum max.
    An expression that starts with "-" goes last, after --: csnets backprop --at x=1 -- "-x * 2".

    \b
    Examples:
      csnets backprop "(x + y) * z" --at x=-2 --at y=5 --at z=-4
      csnets backprop "sum((W @ x) ** 2)" --at "W=[[0.1,0.5],[-0.3,0.8]]" --at "x=[0.2,0.4]"
      csnets backprop --example sigmoid_neuron --plot neuron.png
    """
    from cs_nets.circuits import evaluate, format_table, get_example, to_dot
    from cs_nets.circuits.expr import parse_assignments

    if (expression is None) == (example is None):
        raise click.UsageError("give an EXPRESSION or --example NAME (one of them)")
    values = parse_assignments(assignments)
    if example:
        chosen = get_example(example)
        expression, values = chosen.expression, {**chosen.values, **values}
    if plot_path:
        from cs_nets.plots import require_matplotlib

        require_matplotlib()  # say what to install before any work
    circuit = evaluate(expression, values)
    _echo(to_dot(circuit) if dot else format_table(circuit))
    if plot_path:
        from cs_nets.plots.circuit import plot_circuit

        _echo(f"wrote {plot_circuit(circuit, plot_path, title=f'f = {expression}')}", err=dot)


# --------------------------------------------------------------------------- training

_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
                              help="YAML config file")
_set_option = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                           help="override a config key (value read as YAML; repeatable)")
_out_option = click.option("--out", help="run directory (default: output.dir, else runs/<config>-<time>); "
                                         "must not hold a run yet")
_overwrite_option = click.option("--overwrite", is_flag=True,
                                 help="replace the run in --out (only once the new one has saved its first epoch)")
_data_dir_option = click.option("--data-dir", help=_DATA_DIR_HELP)
_quiet_option = click.option("--quiet", "-q", is_flag=True, help="no progress bars or per-epoch lines")


def _command_line() -> str:
    return shlex.join(["csnets", *sys.argv[1:]])


def _epoch_logger(log, num_epochs: int):
    def on_epoch(m):
        split = ""
        if m.get("train_data_loss") is not None and m.get("train_reg_loss") is not None:
            split = f" (data {m['train_data_loss']:.4f} + reg {m['train_reg_loss']:.4f})"
        log(f"epoch {m['epoch']:>3}/{num_epochs}  loss {m['train_loss']:.4f}{split}  train {m['train_accuracy']:.4f}  "
            f"val {m['val_accuracy']:.4f}  lr {m['lr']:.2e}  {m['seconds']:.1f}s")
    return on_epoch


def _report(result, signals) -> None:
    """The end of train / random-search: the last line is `test accuracy: 0.xxxx`, or an error."""
    if result.status == "diverged":
        raise CsNetsError(f"{result.message}; the best parameters so far are in {result.run_dir}")
    if result.status == "interrupted":
        where = f"saved to {result.run_dir}; continue with `csnets train --resume {result.run_dir}`" \
            if result.summary else "nothing was saved"
        _echo(f"{result.message}; {where}", err=True)
        sys.exit(signals.exit_code())
    if result.message:
        _echo(result.message, err=True)
    _echo(f"test accuracy: {result.test_accuracy:.4f}")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file")
@_set_option
@_out_option
@_overwrite_option
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="continue this run directory from its last saved epoch, with its own config")
@click.option("--allow-changed-config", is_flag=True,
              help="with --resume: continue even though config.yaml was edited since the run started")
@_data_dir_option
@click.option("--plot", is_flag=True, help="write the PNG pictures at the end (needs cs_nets[plot])")
@_quiet_option
def train(config_path, overrides, out, overwrite, resume_dir, allow_changed_config, data_dir, plot, quiet):
    """Train a model with minibatch SGD; keep the best on validation; test once.

    The state is saved after every epoch; Ctrl-C, SIGTERM or SIGHUP stop the run
    cleanly (exit 130, 143, 129) and `--resume RUN_DIR` continues it. The last line
    printed is `test accuracy: 0.xxxx`.

    \b
    Example:
      csnets train --config configs/two_layer.yaml --set optim.learning_rate=5e-4 --out runs/tl
      csnets train --resume runs/tl
    """
    from cs_nets.config import load_config
    from cs_nets.plots import run_pictures
    from cs_nets.runs.task import read_run_config, resume, run

    log = _logger(quiet)
    if resume_dir:
        if config_path or overrides or out or overwrite:
            raise click.UsageError("--resume continues a run with its own config and folder: "
                                   "it takes no --config, --set, --out or --overwrite")
        run_config = read_run_config(resume_dir)
        pictures = run_pictures(plot or run_config.output.plot)
        with _stoppable() as signals:
            result = resume(resume_dir, data_dir=data_dir, progress=_progress(quiet), log=log,
                            on_epoch=_epoch_logger(log, run_config.train.num_epochs), pictures=pictures,
                            allow_changed_config=allow_changed_config)
    else:
        if not config_path:
            raise click.UsageError("Missing option '--config' (or --resume RUN_DIR).")
        if allow_changed_config:
            raise click.UsageError("--allow-changed-config goes with --resume RUN_DIR")
        config = load_config(config_path, list(overrides))
        pictures = run_pictures(plot or config.output.plot)
        with _stoppable() as signals:
            result = run(config, out, data_dir=data_dir, overwrite=overwrite, config_path=config_path,
                         progress=_progress(quiet), log=log, on_epoch=_epoch_logger(log, config.train.num_epochs),
                         command=_command_line(), overrides=overrides, pictures=pictures)
    _report(result, signals)


@main.command("random-search")
@_config_option
@_set_option
@_out_option
@click.option("--overwrite", is_flag=True, help="replace the run in --out (only once the new search has finished)")
@_data_dir_option
@_quiet_option
def random_search_command(config_path, overrides, out, overwrite, data_dir, quiet):
    """The lecture's "Strategy #1": try random weights, keep the best by training loss.

    \b
    Example:
      csnets random-search --config configs/random_search.yaml --set search.attempts=200
    """
    from cs_nets.config import load_config
    from cs_nets.runs.task import run

    config = load_config(config_path, list(overrides))
    with _stoppable() as signals:
        result = run(config, out, task="random_search", data_dir=data_dir, overwrite=overwrite,
                     config_path=config_path, progress=_progress(quiet), log=_logger(quiet),
                     command=_command_line(), overrides=overrides)
    _report(result, signals)


@main.command("config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file (default: none)")
@_set_option
@click.option("--reference", is_flag=True, help="print every key as a Markdown table instead")
def config_command(config_path, overrides, reference):
    """Print the resolved config (defaults, file and --set applied), or the key reference.

    \b
    Example:
      csnets config --config configs/two_layer.yaml --set model.reg=1e-2
      csnets config --reference
    """
    from cs_nets.config import dump_config, load_config, reference_table

    _echo(reference_table().rstrip() if reference else dump_config(load_config(config_path, list(overrides))).rstrip())


# --------------------------------------------------------------------------- results


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True),
              help="run directory or model.npz")
@click.option("--split", type=click.Choice(registry.SPLITS), default="test", show_default=True)
@click.option("--data-dir", help="data folder (default: $CS_NETS_DATA, else ~/.cache/cs_nets; "
                                "a checkpoint's stored data.dir is never used)")
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
    from cs_nets.evaluation.evaluate import evaluate_checkpoint

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
@click.option("--checkpoint", required=True, type=click.Path(exists=True), help="run directory or model.npz")
@click.argument("paths", metavar="FILE_OR_DIR...", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", "top_k", type=click.IntRange(min=1), default=3, show_default=True,
              help="how many classes to list per file")
@click.option("--recursive", "-r", is_flag=True, help="also read the subfolders of each folder")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document instead of lines")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write the predictions as CSV to this file")
@_quiet_option
def predict(checkpoint, paths, top_k, recursive, as_json, csv_path, quiet):
    """Classify image files (PNG, JPEG, BMP, GIF, WebP, TIFF) with a saved model.

    Each image is converted as docs/predict.md says (EXIF orientation, RGB,
    centre crop, Lanczos resize to the model's input size). A folder gives its
    image files in name order. A file that cannot be read is one line on stderr;
    the others are still predicted, and the exit code is then 1. Needs
    cs_nets[images] (Pillow).

    \b
    Example:
      csnets predict --checkpoint runs/two_layer-20260101-120000 horse.jpg photos/
    """
    from cs_nets.data.images import require_pillow, walk_images
    from cs_nets.evaluation.predict import TrainedModel, predict_files, write_predictions_csv

    if as_json and csv_path:
        raise click.UsageError("--json and --csv: choose one")
    require_pillow()
    trained = TrainedModel.load(checkpoint)
    trained.check_can_read_images()
    entries = walk_images(paths, recursive=recursive)
    results, failures = [], []
    bar = None
    if _progress(quiet) and len(entries) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(entries), unit="img", file=sys.stderr, leave=False)
    for r in predict_files(trained, entries):
        if bar is not None:
            bar.update()
        if r.error is not None:
            failures.append({"file": str(r.path), "error": r.error})
            _echo(f"error: {r.path}: {r.error}", err=True)
            continue
        record = trained.file_record(r, top_k)
        if as_json or csv_path:
            results.append(record)
        else:
            _echo(_prediction_line(record, trained.kind))
    if bar is not None:
        bar.close()
    if as_json:
        click.echo(json.dumps({"checkpoint": str(trained.path), "kind": trained.kind, "top_k": top_k,
                               "class_names": trained.class_names, "predictions": results,
                               "failed": failures}, indent=2))
    elif csv_path:
        write_predictions_csv(csv_path, results, top_k, trained.kind)
        if not quiet:
            _log(f"wrote {len(results)} predictions to {csv_path}")
    if failures:
        _log(f"{len(failures)} of {len(entries)} files could not be read")
        sys.exit(1)
    if not entries:
        _log("no image files found")
        sys.exit(1)


def _prediction_line(record: dict, kind: str) -> str:
    """'path: horse 0.8123 (top 3: horse 0.8123, deer 0.1011, dog 0.0502)'; SVM: 'horse score 3.2100 ...'."""
    word = "" if kind == "probability" else "score "
    top = ", ".join(f"{t['class']} {t[kind]:.4f}" for t in record["top"])
    return f"{record['file']}: {record['class']} {word}{record[kind]:.4f} (top {len(record['top'])}: {top})"


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
    from cs_nets.runs.reader import FINISHED, collect_runs, rerun_command

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
        again = rerun_command(best["command"])
        click.echo(f"best: {best['run']} (val accuracy {best['val_accuracy']:.4f})" + (f": {again}" if again else ""))
    if csv_path:
        import csv

        from cs_nets.files.atomic import atomic_open

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
    from cs_nets.files.untrusted import clip_text

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

    for path in plot_run(run_dir, out_dir, log=_log):
        click.echo(f"wrote {path}")


# --------------------------------------------------------------------------- sweeps


@main.command()
@click.argument("spec_path", metavar="[SPEC]", required=False, type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="instead of a SPEC: sweep this config over the --grid values")
@click.option("--grid", "grids", multiple=True, metavar="SECTION.KEY=V1,V2",
              help="with --config: values to try (split on commas outside brackets, read as YAML; repeatable)")
@click.option("--command", "command", type=click.Choice(["train", "random-search"]), default=None,
              help="with --config: what each trial runs (default: train)")
@click.option("--out", help="sweep folder (default: sweeps/<spec>-<time>); one run directory per trial")
@click.option("--resume", is_flag=True, help="continue the sweep in --out; finished trials are not run again")
@click.option("--backend", type=click.Choice(registry.SWEEP_BACKENDS), default="auto", show_default=True,
              help="local: trials as processes on this machine; ray: Ray Tune (ASHA, clusters); "
                   "auto: the sweep's own on --resume, else ray if installed")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="trials at once (default: the spec's max_concurrent, "
                                                               "else 1 locally and as many as the CPUs allow on Ray)")
@click.option("--address", envvar="RAY_ADDRESS",
              help="Ray cluster HEAD:PORT to run on (default: $RAY_ADDRESS, else start Ray on this machine)")
@click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              help="seconds --address gets to answer")
@_set_option
@_data_dir_option
@click.option("--plot", is_flag=True, help="also write DIR/sweep_parameters.png (needs cs_nets[plot])")
@_quiet_option
@click.pass_context
def sweep(ctx, spec_path, config_path, grids, command, out, resume, backend, jobs, address, connect_timeout,
          overrides, data_dir, plot, quiet):
    """Hyperparameter search: trials in parallel, on this machine or a Ray cluster.

    Every trial is a `csnets train` run into DIR/trial-NNN. The trials come from a
    SPEC (grids and random draws) or from --config CONFIG --grid KEY=V1,V2 ...
    Backends: local (processes, -j at a time, no Ray needed; scheduler: asha is
    synchronous successive halving) and ray (Ray Tune; ASHA stops trials that fall
    behind; --address runs on a cluster). At the end:
    the table of `csnets summarize DIR`, DIR/best.yaml and the command that trains
    it. Exit 1 if a trial failed; Ctrl-C stops the sweep and --resume continues it.

    \b
    Example:
      csnets sweep configs/sweeps/two_layer.yaml --out sweeps/tl --data-dir ~/data/cifar10
      csnets sweep configs/sweeps/two_layer.yaml --out sweeps/tl --resume
      csnets sweep --config configs/smoke.yaml --grid optim.learning_rate=1e-3,3e-3 --backend local -j 2
    """
    from cs_nets.sweep import check_trials_fit, choose_backend, default_sweep_dir, expand_trials, grid_spec, load_spec
    from cs_nets.sweep.folder import lock_sweep_dir
    from cs_nets.sweep.results import best_command

    if bool(spec_path) == bool(config_path):
        raise click.UsageError("give a sweep SPEC, or --config CONFIG with --grid KEY=V1,V2 (not both)")
    if spec_path and (grids or command):
        raise click.UsageError("--grid and --command go with --config; a SPEC has its own parameters and task")
    if resume and not out:
        raise click.UsageError("--resume needs --out DIR, the sweep to continue")
    from_env = ctx.get_parameter_source("address") == click.core.ParameterSource.ENVIRONMENT
    if address and backend == "local":
        if from_env:
            address = None  # $RAY_ADDRESS is for the Ray backend
        else:
            raise click.UsageError("--address is a Ray cluster: it needs --backend ray (or auto)")
    backend = choose_backend(backend, resume=resume, out=out, address=address)
    if config_path:
        spec = grid_spec(config_path, list(grids), list(overrides), task=(command or "train").replace("-", "_"))
    else:
        spec = load_spec(spec_path, list(overrides))
    if jobs:
        spec.options.max_concurrent = jobs
    trials = expand_trials(spec)
    check_trials_fit(trials)  # one line before the folder is locked, Ray is started or any data is loaded
    if plot:
        from cs_nets.plots import require_matplotlib

        require_matplotlib()  # fail before the sweep, not after
    out = Path(out) if out else default_sweep_dir(spec)
    log = _logger(quiet)
    if backend == "ray" and address:
        from cs_nets.sweep.tune import probe_ray

        # one line within the timeout, before anything is written
        probe_ray(address, connect_timeout, "$RAY_ADDRESS" if from_env else "--address")
    lock = lock_sweep_dir(out)
    try:
        if backend == "local":
            from cs_nets.sweep.local import run_local_sweep

            result = run_local_sweep(spec, trials, out, jobs=spec.options.max_concurrent or 1, resume=resume,
                                     data_dir=data_dir, log=log)
        else:
            from cs_nets.sweep.tune import run_sweep

            result = run_sweep(spec, trials, out, address=address, resume=resume, data_dir=data_dir,
                               progress=_progress(quiet), log=log, connect_timeout=connect_timeout,
                               debug=ctx.find_root().params.get("debug", False))
    except MemoryError as err:  # the estimate said it fits, the machine disagreed: one line all the same
        detail = " ".join(str(err).split())[:300] or "MemoryError"
        raise CsNetsError(f"the sweep's driver ran out of memory ({detail}); lower the sizes of its trials") from err
    finally:
        lock.release()
    if any(o.status not in ("failed", "not_started") for o in result.outcomes):
        ctx.invoke(summarize, sweep_dir=str(out))
    if result.best_config is not None:
        _echo(f"best config: {out / result.best_config.name}")
        _echo(f"train it: {best_command(out / result.best_config.name, spec.options.task, data_dir)}")
    if plot:
        from cs_nets.plots.sweep_panels import plot_sweep_parameters

        _echo(f"wrote {plot_sweep_parameters(result.outcomes, out / 'sweep_parameters.png')}")
    for outcome in result.failed:
        _echo(f"{outcome.name} failed: {outcome.error}", err=True)
    if result.interrupted:
        source = [spec_path] if spec_path else ["--config", config_path, *(w for g in grids for w in ("--grid", g)),
                                                 *(["--command", command] if command else [])]
        again = ["csnets", "sweep", *source, "--out", str(out), "--resume"]
        again += [word for o in overrides for word in ("--set", o)] + (["--data-dir", data_dir] if data_dir else [])
        _echo(f"interrupted; continue with: {shlex.join(again)}", err=True)
        sys.exit(128 + result.signal if result.signal else 130)
    if result.failed:
        raise CsNetsError(f"{len(result.failed)} of {len(result.outcomes)} trials failed")
