"""Configs as a hostile or careless user writes them: each is one line, exit 2, quickly, nothing written."""

import time
from pathlib import Path

import pytest
from hostile import invoke, one_line, spawn, untouched

from cs_nets.config import load_config, parse_override
from cs_nets.config.yaml_reader import MAX_YAML_NODES
from cs_nets.errors import ConfigError
from cs_nets.memory import check_fits, estimate_bytes, param_shapes
from cs_nets.nn.models import build_model
from cs_nets.training._fused_step import FusedStep

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, from 400 bytes.
LEVELS = ["&a [" + ",".join(["lol"] * 9) + "]"] + [f"&{c} [" + ",".join([f"*{p}"] * 9) + "]"
                                                   for p, c in zip("abcdefgh", "bcdefghi")]
BILLION_LAUGHS = "model:\n  type:\n" + "".join(f"    - {level}\n" for level in LEVELS)


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def refused(world, pattern, config="exp.yaml", *sets, process=False):
    """`csnets train --config CONFIG [--set ...] --out run` in `world` (a subprocess with process=True): exit 2,
    one line `error: ...` matching `pattern` (returned), nothing written anywhere."""
    args = ["train", "--config", config, *(w for s in sets for w in ("--set", s)), "--out", "run"]
    outcome = spawn(world, args) if process else invoke(world, args)
    line = one_line(outcome, 2, pattern)
    untouched(outcome)
    return line


def test_non_utf8_config_names_file_line_and_byte(tmp_path):
    path = write(tmp_path, b"model:\n  type: linear # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:2: config is not UTF-8 text \(byte 0xe9 at offset 27\)"):
        load_config(path)
    refused(tmp_path, r"exp.yaml:2: config is not UTF-8 text \(byte 0xe9 at offset 27\)")
    assert load_config(write(tmp_path, "\ufeffmodel: {type: linear}\n".encode())).model.type == "linear"  # BOM


def test_billion_laughs_is_refused_fast_with_a_short_message(tmp_path):
    path = write(tmp_path, BILLION_LAUGHS)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert time.perf_counter() - start < 2.0  # before: no answer within 30 s
    message = str(err.value)
    assert f"more than {MAX_YAML_NODES} values once its aliases are expanded" in message and len(message) < 200
    # The same document through --set and through the command line.
    with pytest.raises(ConfigError, match="aliases are expanded"):
        parse_override("model.hidden_dims=[" + ", ".join(LEVELS) + "]")
    refused(tmp_path, "aliases are expanded", process=True)


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"exp.yaml:1: a recursive alias"):
        load_config(write(tmp_path, "features: &a [*a]\n"))
    refused(tmp_path, r"exp.yaml:1: a recursive alias")
    with pytest.raises(ConfigError, match=r"nested more than 32 levels deep"):
        load_config(write(tmp_path, "features: " + "[" * 5000 + "]" * 5000 + "\n"))
    chain = "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))  # aliases nesting 200 deep
    with pytest.raises(ConfigError, match=r"aliases nest collections more than 32 levels deep"):
        load_config(write(tmp_path, "a0: &a0 [1]\n" + chain))


def test_a_few_aliases_are_fine(tmp_path):
    path = write(tmp_path, "model: &m {type: fc_net, hidden_dims: &h [8, 4]}\nsearch: {attempts: 3}\n"
                           "data: {source: synthetic}\nfeatures: &f [hog]\n")
    config = load_config(path)
    assert config.model.hidden_dims == [8, 4] and config.features[0]["type"] == "hog"


def test_duplicate_keys_name_both_lines(tmp_path):
    path = write(tmp_path, "model:\n  hidden_dim: 8\n  type: two_layer\n  hidden_dim: 16\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:4: duplicate key 'hidden_dim' \(lines 2 and 4\)"):
        load_config(path)
    refused(tmp_path, r"exp.yaml:4: duplicate key 'hidden_dim' \(lines 2 and 4\)")
    with pytest.raises(ConfigError, match=r"exp.yaml:3: duplicate key 'model' \(lines 1 and 3\)"):
        load_config(write(tmp_path, "model: {type: linear}\nseed: 1\nmodel: {type: fc_net}\n"))
    # A merge key is not a duplicate: it is how YAML reuses a mapping.
    config = load_config(write(tmp_path, "model: {type: linear}\nsearch: {<<: {attempts: 5}, scale: 1.0e-3}\n"))
    assert config.search.attempts == 5


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", ".NaN", "1e400"])
def test_non_finite_numbers_are_refused(tmp_path, text):
    with pytest.raises(ConfigError, match=r"optim.learning_rate: expected a finite number, got (nan|inf|-inf)"):
        load_config(write(tmp_path, f"optim:\n  learning_rate: {text}\n"))
    refused(tmp_path, r"exp.yaml:2: optim.learning_rate: expected a finite number, got (nan|inf|-inf)")
    with pytest.raises(ConfigError, match=r"--set optim.learning_rate: .*expected a finite number"):
        load_config(None, [f"optim.learning_rate={text}"])
    with pytest.raises(ConfigError, match=r"model.reg: expected a finite number"):
        load_config(None, [f"model.reg={text.lstrip('-')}"])
    with pytest.raises(ConfigError, match=r"model.init: expected float or str or null"):
        load_config(None, [f"model.init={text}"])


def test_lr_nan_on_the_command_line_exits_2(tmp_path):
    refused(tmp_path, "expected a finite number, got nan", SMOKE, "optim.learning_rate=.nan", process=True)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_config_is_an_error(tmp_path, text):
    with pytest.raises(ConfigError, match=r"exp.yaml: the config is empty; write at least one section"):
        load_config(write(tmp_path, text))
    refused(tmp_path, r"exp.yaml: the config is empty; write at least one section")


def test_an_explicit_empty_mapping_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "{}\n")).to_dict() == load_config(None).to_dict()


def test_long_values_are_clipped_in_messages(tmp_path):
    big = "x" * 100_000
    for text in (f"model:\n  type: {big}\n", f"model:\n  {big}: 1\n", f"{big}: 1\n",
                 f"model:\n  hidden_dims: [{', '.join(['1'] * 5000)}, oops]\n", f"model: [{big}]\n"):
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, text))
        assert len(str(err.value)) < 400, str(err.value)[:500]
        assert len(refused(tmp_path, "exp.yaml")) < 400 + len("error: ")
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"model.type={big}"])
    assert len(str(err.value)) < 400
    with pytest.raises(ConfigError, match="larger than 1.0 MiB"):
        load_config(write(tmp_path, f"model:\n  type: {'y' * (2 << 20)}\n"))


@pytest.mark.parametrize("override,part", [
    ("model.hidden_dims=[1000000000]", "the parameters with their velocity and best copy"),
    ("train.num_epochs=1000000000000", "the loss of every minibatch"),
    ("data.synthetic_train=1000000000", "the temporaries of generating the data"),  # 2 float32 copies
])
def test_sizes_that_cannot_fit_are_refused_before_allocating(tmp_path, override, part):
    message = refused(tmp_path, "the run needs about", SMOKE, override, process=True)
    assert "TiB of memory but" in message and part in message


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_estimate_counts_the_model_the_trainer_builds(tmp_path, momentum):
    """Reference: the bytes of the parameters build_model really allocates, of the update
    rule's buffers the trainer's FusedStep really holds, and of one best-epoch copy."""
    for model_type, hyper in [("linear", {}), ("two_layer", {"hidden_dim": 7}),
                              ("fc_net", {"hidden_dims": [9, 5, 3]}), ("fc_net", {"hidden_dims": []})]:
        model = build_model(model_type, 3072, 10, dtype="float64", **hyper)
        assert param_shapes(model_type, 3072, 10, hyper) == {k: v.shape for k, v in model.params.items()}
        sets = [f"model.type={model_type}", "data.source=synthetic", "data.dtype=float64",
                f"optim.momentum={momentum}"]
        sets += [f"model.{k}={v}" for k, v in hyper.items()]
        config = load_config(None, sets)
        parts = estimate_bytes(config, num_train=100, input_dim=3072)
        step = FusedStep(model.params, momentum=momentum)
        buffers = sum(a.nbytes for b in step.buffers().values() for a in b.values())
        param_bytes = sum(p.nbytes for p in model.params.values())
        assert parts["model"] == 2 * param_bytes + buffers
        assert parts["batch_losses"] == config.train.num_epochs * 1 * 4  # 100 images, batch 200: one batch
        scoring = estimate_bytes(config, num_train=100, input_dim=3072, training=False)
        assert scoring["model"] == sum(p.nbytes for p in model.params.values()) and "batch_losses" not in scoring


def test_check_fits_compares_with_the_memory_it_is_given(tmp_path):
    # float32 storage: with auto, a byte too few would switch to uint8 storage, which fits (test_storage.py)
    config = load_config(SMOKE, ["data.storage=float32"])
    needed = sum(estimate_bytes(config).values())
    assert check_fits(config, available=needed) == needed
    with pytest.raises(ConfigError) as err:
        check_fits(config, available=needed - 1)
    message = str(err.value)
    assert f"{needed / 2**20:.1f} MiB of memory but {(needed - 1) / 2**20:.1f} MiB is available" in message
    assert check_fits(config) == needed  # the smoke run fits on any machine that runs the tests
