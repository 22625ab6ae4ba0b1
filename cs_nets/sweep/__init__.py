"""``csnets sweep``: hyperparameter search, as local processes or on Ray Tune, from one laptop to a cluster.

    spec.py      the sweep YAML (or a config and --grid options): validated like a config; its trials,
                 each checked to fit in memory (check_trials_fit) before anything is written
    folder.py    the sweep folder: its lock, what it may hold, sweep.json
    local.py     the local backend: each trial a process (worker.py), N at a time        [no Ray]
    worker.py    one trial of the local backend: cs_nets.runs.task.run / resume
    data.py      each distinct dataset prepared once, shared through Ray's object store
    tune.py      the driver on Ray Tune (scheduling, ASHA, restore)        [imports Ray]
    trial.py     one trial in a Ray worker: cs_nets.runs.task.run / resume, reporting each epoch
    finalize.py  run directories of trials Tune stopped, finished from their saved state
    results.py   outcomes, the best trial, DIR/best.yaml

Importing this package does not import Ray (an optional extra, cs_nets[sweep]):
call ``require_ray()`` first, then use cs_nets.sweep.tune.
"""

import time
from pathlib import Path

from cs_nets.errors import CsNetsError
from cs_nets.sweep.spec import SweepSpec, Trial, check_trials_fit, expand_trials, grid_spec, load_spec

__all__ = ["SweepSpec", "Trial", "check_trials_fit", "choose_backend", "default_sweep_dir", "expand_trials",
           "grid_spec", "load_spec", "require_ray"]


def require_ray():
    """The ray module, or a one-line CsNetsError (exit 1) saying how to install it."""
    try:
        import ray
        import threadpoolctl  # noqa: F401 - the trials set their BLAS threads with it
        from ray import tune  # noqa: F401
    except ImportError:
        raise CsNetsError("csnets sweep needs Ray Tune: pip install 'cs_nets[sweep]'") from None
    return ray


def default_sweep_dir(spec: SweepSpec) -> Path:
    """sweeps/<spec name>-<timestamp>."""
    return Path("sweeps") / f"{spec.path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def choose_backend(backend: str, *, resume: bool = False, out=None, address: str | None = None) -> str:
    """'local' or 'ray' for ``--backend`` (auto: the sweep's own on resume, ray with an address or when
    Ray is installed, else local); a one-line CsNetsError if ray is asked for and not installed."""
    from cs_nets.sweep.folder import recorded_backend

    chosen = backend
    if backend == "auto":
        chosen = (recorded_backend(Path(out)) if resume and out else None) or ("ray" if address else "auto")
    if chosen == "auto":
        try:
            require_ray()
            chosen = "ray"
        except CsNetsError:
            chosen = "local"
    elif chosen == "ray":
        require_ray()
    return chosen
