"""`--set` values and command lines a careless or hostile user types: each is one line with the right exit
code, before anything is written anywhere (the working directory, its home and data folders unchanged)."""

import re

import pytest
from hostile import ROOT, SMOKE, invoke, one_line, untouched

TRAIN = ["train", "--config", SMOKE]

# --set value -> pattern of the one error line (exit 2)
OVERRIDES = {
    "epochs negative": ("train.num_epochs=-1", r"train.num_epochs"),
    "epochs zero": ("train.num_epochs=0", r"train.num_epochs"),
    "epochs a float": ("train.num_epochs=1.5", r"train.num_epochs"),
    "epochs a string": ("train.num_epochs=many", r"train.num_epochs"),
    "epochs a bool": ("train.num_epochs=true", r"train.num_epochs"),
    "epochs 1e400": ("train.num_epochs=1e400", r"train.num_epochs"),
    "batch size zero": ("train.batch_size=0", r"train.batch_size"),
    "batch size a list": ("train.batch_size=[1, 2]", r"train.batch_size"),
    "learning rate negative": ("optim.learning_rate=-1", r"optim.learning_rate"),
    "learning rate nan": ("optim.learning_rate=.nan", r"optim.learning_rate"),
    "learning rate inf": ("optim.learning_rate=.inf", r"optim.learning_rate"),
    "learning rate text": ("optim.learning_rate=fast", r"optim.learning_rate"),
    "momentum above 1": ("optim.momentum=1.5", r"optim.momentum"),
    "schedule unknown": ("optim.schedule=sometimes", r"optim.schedule"),
    "reg negative": ("model.reg=-0.1", r"model.reg"),
    "reg nan": ("model.reg=.nan", r"model.reg"),
    "model unknown": ("model.type=resnet", r"model.type"),
    "loss unknown": ("model.loss=hinge2", r"model.loss"),
    "activation unknown": ("model.activation=swishy", r"model.activation"),
    "hidden dims empty string": ("model.hidden_dims=''", r"model.hidden_dims"),
    "hidden dims zero": ("model.hidden_dims=[0]", r"model.hidden_dims"),
    "hidden dims negative": ("model.hidden_dims=[-3]", r"model.hidden_dims"),
    "hidden dims nested": ("model.hidden_dims=[[3]]", r"model.hidden_dims"),
    "seed negative": ("seed=-1", r"seed"),
    "seed a list": ("seed=[1]", r"seed"),
    "seed text": ("seed=abc", r"seed"),
    "unknown section": ("nonsense.key=1", r"nonsense"),
    "unknown key": ("train.nonsense=1", r"nonsense"),
    "a section set to a number": ("train=5", r"train"),
    "no equals sign": ("train.num_epochs", r"train.num_epochs"),
    "empty key": ("=3", r"--set"),
    "num_val negative": ("data.num_val=-5", r"data.num_val"),
    "source unknown": ("data.source=imagenet", r"data.source"),
    "dtype unknown": ("data.dtype=float16", r"data.dtype"),
    "normalize unknown": ("data.normalize=zscore", r"data.normalize"),
    "features not a list": ("features=5", r"features"),
    "feature type unknown": ("features=[{type: sift}]", r"features"),
    "bow of 0 words": ("features=[{type: bow, words: 0}]", r"words"),
    "hog of cell 0": ("features=[{type: hog, cell: 0}]", r"cell"),
    "invalid YAML value": ("model.reg=[1, 2", r"model.reg"),
}


@pytest.mark.parametrize("override,pattern", OVERRIDES.values(), ids=OVERRIDES.keys())
def test_a_bad_override_is_one_line_and_writes_nothing(tmp_path, override, pattern):
    outcome = invoke(tmp_path, [*TRAIN, "--set", override, "--out", "r"])
    one_line(outcome, 2, pattern)
    untouched(outcome)


OUTPUT_DIRS = {
    "output.dir is the root": ("output.dir=/", r"the root folder is never a run directory"),
    "output.dir is home": ("output.dir=home", r"the home folder is never a run directory"),
    "output.dir is '~'": ("output.dir='~'", r"the home folder is never a run directory"),
    "output.dir is a file": ("output.dir=notes.txt", r"exists and is not a directory"),
    "output.dir is the working directory of files": ("output.dir=.", r"holds files that are not a run"),
}


@pytest.mark.parametrize("override,pattern", OUTPUT_DIRS.values(), ids=OUTPUT_DIRS.keys())
def test_output_dir_in_the_config_is_held_to_the_same_rules(tmp_path, override, pattern):
    (tmp_path / "notes.txt").write_text("mine")
    outcome = invoke(tmp_path, [*TRAIN, "--set", override])
    one_line(outcome, 2, pattern)
    untouched(outcome)


USAGE = "click's usage text"  # click's own refusal of an option: "Usage: ...", "Try ...", then "Error: ..."
COMMANDS = {
    "resume with --config": (["train", "--resume", "r", "--config", SMOKE], 2, r"--resume continues a run", USAGE),
    "resume with --set": (["train", "--resume", "r", "--set", "seed=1"], 2, r"--resume continues a run", USAGE),
    "resume with --overwrite": (["train", "--resume", "r", "--overwrite"], 2, r"--resume continues a run", USAGE),
    "resume of nothing": (["train", "--resume", "nothing"], 2, r"not a run directory \(no config.yaml\)", None),
    "config missing": (["train", "--config", "missing.yaml"], 2, r"missing.yaml", None),
    "config is a folder": (["train", "--config", "."], 2, r"is a directory", USAGE),
    "evaluate a folder of notes": (["evaluate", "--checkpoint", "."], 1, r"not a regular file|no checkpoint", None),
    "evaluate a text file": (["evaluate", "--checkpoint", "notes.txt"], 1, r"not a cs_nets checkpoint", None),
    "evaluate an unknown split": (["evaluate", "--checkpoint", "notes.txt", "--split", "dev"], 2, r"split", USAGE),
    "random search of a config folder": (["random-search", "--config", ROOT / "configs"], 2, r"is a directory",
                                         USAGE),
    "random search into root": (["random-search", "--config", SMOKE, "--out", "/"], 2, r"root folder", None),
    "plot of a folder of notes": (["plot", "."], 1, r"^error: nothing to draw in \.", None),
}


@pytest.mark.parametrize("args,code,pattern,usage", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_bad_command_line_is_refused(tmp_path, args, code, pattern, usage):
    (tmp_path / "notes.txt").write_text("mine")
    # matplotlib keeps its font cache in $HOME: its own, not a run's
    outcome = invoke(tmp_path, args, own=("home/.cache", "home/.config") if args[0] == "plot" else ())
    if usage:
        assert outcome.code == code and "Traceback" not in outcome.out, outcome.out
        lines = outcome.out.strip().splitlines()
        assert lines[0].startswith("Usage: ") and lines[-1].startswith("Error: "), outcome.out
        assert re.search(pattern, lines[-1]), outcome.out
    else:
        one_line(outcome, code, pattern)
    untouched(outcome)
