"""Save and load a trained model as one ``.npz`` file, without pickle.

Layout: ``params/<name>`` (the model's arrays), ``inputs/<name>`` (the input
pipeline's statistics) and ``meta``, a JSON string with the architecture, the
input pipeline's config, the class names and the resolved run config. Loading
uses ``allow_pickle=False``, so a hostile file cannot run code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from cs_nets.errors import ArgumentError, DataError
from cs_nets.fileio import atomic_open
from cs_nets.models import build_model

FORMAT_VERSION = 1


def checkpoint_path(path: str | Path) -> Path:
    """A run directory or a model.npz file -> the model.npz file."""
    path = Path(path)
    return path / "model.npz" if path.is_dir() else path


def save_checkpoint(path, model, inputs, meta: dict | None = None) -> Path:
    """Write `model` (params + architecture) and `inputs` (an InputPipeline) to `path` atomically."""
    path = Path(path)
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    arrays.update({f"inputs/{k}": v for k, v in inputs.state().items()})
    info = {
        "format": FORMAT_VERSION,
        "model_type": model.model_type,
        "input_dim": int(model.input_dim),
        "num_classes": int(model.num_classes),
        "dtype": np.dtype(model.dtype).name,
        "hyperparams": model.hyperparams(),
        "inputs": inputs.config(),
        **(meta or {}),
    }
    arrays["meta"] = np.array(json.dumps(info))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_checkpoint(path):
    """Read a checkpoint -> (model, inputs: InputPipeline, meta: dict). DataError if unreadable."""
    from cs_nets.pipeline import InputPipeline  # the pipeline imports the data layer; keep this module light

    path = checkpoint_path(path)
    if not path.exists():
        raise DataError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
        params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
        input_arrays = {k[len("inputs/"):]: v for k, v in arrays.items() if k.startswith("inputs/")}
        model = build_model(meta["model_type"], meta["input_dim"], meta["num_classes"],
                            dtype=meta["dtype"], **meta["hyperparams"])
        model.load_params(params)  # checks names and shapes
        inputs = InputPipeline.from_state(meta["inputs"], input_arrays)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, ArgumentError) as err:
        # ArgumentError here means the stored architecture or arrays are inconsistent: bad data, exit 1
        raise DataError(f"{path} is not a cs_nets checkpoint ({type(err).__name__}: {err})") from None
    return model, inputs, meta
