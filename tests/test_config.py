"""Config loading: types, ranges, unknown keys with suggestions, YAML errors, --set overrides."""

import pytest
import yaml

from cs_nets.config import (
    ConfigDeprecationWarning,
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)
from cs_nets.errors import ConfigError


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_values_are_typed(tmp_path):
    path = write(tmp_path, "model:\n  type: two_layer\n  reg: 1e-3\n  hidden_dims: [50]\noptim:\n  learning_rate: 1\n")
    config = load_config(path)
    assert config.name == "exp"
    assert config.model.type == "two_layer"
    assert config.model.reg == pytest.approx(1e-3) and isinstance(config.model.reg, float)
    assert config.optim.learning_rate == 1.0 and isinstance(config.optim.learning_rate, float)
    assert config.train.batch_size == 200 and config.data.num_val == 1000 and config.seed == 0


def test_unknown_key_names_file_line_and_closest_key(tmp_path):
    path = write(tmp_path, "model:\n  type: linear\n  hiden_dim: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}:3" in message
    assert "model.hiden_dim" in message
    assert "did you mean 'hidden_dims'" in message


def test_unknown_section_is_named(tmp_path):
    path = write(tmp_path, "optimizer:\n  learning_rate: 1\n")
    with pytest.raises(ConfigError, match=r":1: unknown section 'optimizer'; did you mean 'optim'"):
        load_config(path)


def test_wrong_type_names_expectation(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:2: train.batch_size: expected int, got 'many'"):
        load_config(path)


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match="expected int"):
        load_config(write(tmp_path, "train:\n  num_epochs: true\n"))


def test_out_of_range_and_bad_choice(tmp_path):
    with pytest.raises(ConfigError, match=r"optim.learning_rate: expected a value > 0.0, got -0.1"):
        load_config(write(tmp_path, "optim:\n  learning_rate: -0.1\n"))
    with pytest.raises(ConfigError, match=r"model.activation: expected one of relu, .*got 'swish'"):
        load_config(write(tmp_path, "model:\n  activation: swish\n"))
    with pytest.raises(ConfigError, match=r"momentum: expected a value <= 0.999"):
        load_config(write(tmp_path, "optim:\n  momentum: 1.5\n"))


def test_yaml_syntax_error_gives_line(tmp_path):
    path = write(tmp_path, "model:\n  type: linear\n  reg: [1, 2\ntrain:\n  batch_size: 3\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:\d+: YAML syntax error"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("model.reg=1e-3") == (("model", "reg"), 1e-3)
    assert parse_override("model.hidden_dims=[10, 20]") == (("model", "hidden_dims"), [10, 20])
    assert parse_override("train.patience=null") == (("train", "patience"), None)
    assert parse_override("seed=7") == (("seed",), 7)
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override("model.reg")


def test_overrides_are_validated_and_named(tmp_path):
    path = write(tmp_path, "model:\n  reg: 0.5\n")
    config = load_config(path, ["model.reg=2.5e-4", "train.num_epochs=3", "seed=11"])
    assert config.model.reg == 2.5e-4 and config.train.num_epochs == 3 and config.seed == 11
    with pytest.raises(ConfigError, match=r"--set train.batch_size: train.batch_size: expected a value > 0"):
        load_config(path, ["train.batch_size=0"])
    with pytest.raises(ConfigError, match=r"--set model.regg: unknown key 'model.regg'; did you mean 'reg'"):
        load_config(path, ["model.regg=1"])
    with pytest.raises(ConfigError, match=r"unknown section 'modle'; did you mean 'model'"):
        apply_overrides({}, ["modle.reg=1"])


def test_features_are_validated(tmp_path):
    config = load_config(write(tmp_path, "features:\n  - {type: hog}\n  - {type: color_hist, bins: 12}\n"))
    assert [t["type"] for t in config.features] == ["hog", "color_hist"]
    assert config.features[1]["bins"] == 12
    with pytest.raises(ConfigError, match="features"):
        load_config(write(tmp_path, "features:\n  - {type: sift}\n"))


def test_resolved_config_round_trips(tmp_path):
    config = load_config(write(tmp_path, "model:\n  type: fc_net\n  hidden_dims: [8, 4]\nseed: 3\n"))
    again = config_from_dict(yaml.safe_load(dump_config(config)))
    assert again.to_dict() == config.to_dict()


def test_hflip_cannot_be_combined_with_features(tmp_path):
    path = write(tmp_path, "features: [hog]\ntrain:\n  hflip: true\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:3: train.hflip flips images; it cannot be combined with features"):
        load_config(path)


def test_deprecated_hidden_dim_still_reads_with_one_warning(tmp_path):
    path = write(tmp_path, "model:\n  type: two_layer\n  hidden_dim: 50\n")
    with pytest.warns(ConfigDeprecationWarning, match=r"exp.yaml:3: model.hidden_dim is deprecated; use model.hidden_dims: \[50\]"):
        config = load_config(path)
    assert config.model.hidden_dims == [50]
    with pytest.raises(ConfigError, match="both given"):
        load_config(write(tmp_path, "model:\n  hidden_dim: 5\n  hidden_dims: [5]\n"))


def test_two_layer_takes_exactly_one_hidden_size(tmp_path):
    with pytest.raises(ConfigError, match=r"exp.yaml:3: two_layer has one hidden layer"):
        load_config(write(tmp_path, "model:\n  type: two_layer\n  hidden_dims: [5, 4]\n"))
    assert load_config(write(tmp_path, "model:\n  type: fc_net\n  hidden_dims: [5, 4]\n")).model.hidden_dims == [5, 4]


def test_set_of_either_spelling_replaces_the_file_key(tmp_path):
    path = write(tmp_path, "model:\n  type: two_layer\n  hidden_dims: [50]\n")
    with pytest.warns(ConfigDeprecationWarning, match="--set model.hidden_dim: model.hidden_dim is deprecated"):
        assert load_config(path, ["model.hidden_dim=7"]).model.hidden_dims == [7]
    old = write(tmp_path, "model:\n  type: two_layer\n  hidden_dim: 50\n", name="old.yaml")
    assert load_config(old, ["model.hidden_dims=[9]"]).model.hidden_dims == [9]
