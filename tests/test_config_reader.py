"""Every YAML file a user hands cs_nets (a config, a sweep spec) goes through one hardened
reader: the same bytes give the same one-line error whichever command reads them."""

import pytest
from click.testing import CliRunner

from cs_nets.cli import main
from cs_nets.config import load_config
from cs_nets.errors import ConfigError
from cs_nets.sweep import load_spec

BAD_FILES = {
    "latin-1": b"model:\n  type: linear  # caf\xe9\n",
    "binary": b"\x00\x01\x02\xff\xfe",
    "too large": b"# " + b"x" * (1 << 20) + b"\n",
    "a list": b"- 1\n- 2\n",
    "only comments": b"# nothing here\n",
    "alias bomb": b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                  b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                  b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
}


def message_of(call, path):
    with pytest.raises(ConfigError) as caught:
        call(path)
    return str(caught.value)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_spec_and_a_config_with_the_same_bytes_give_the_same_one_line_error(tmp_path, name):
    path = tmp_path / "file.yaml"
    path.write_bytes(BAD_FILES[name])
    as_config = message_of(load_config, path)
    as_spec = message_of(load_spec, path)
    assert "\n" not in as_config and str(path) in as_config
    # the same message, but for the word that says what the file was read as
    assert as_spec.replace("sweep spec", "config") == as_config


@pytest.mark.parametrize("name", ["latin-1", "binary"])
def test_the_sweep_command_says_it_in_one_line_with_exit_2(tmp_path, name):
    path = tmp_path / "spec.yaml"
    path.write_bytes(BAD_FILES[name])
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert "not UTF-8 text" in result.output and not (tmp_path / "out").exists()
