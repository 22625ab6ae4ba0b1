"""The public API: `import cs_nets` is light, and the example in docs/api.md runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_example_runs(monkeypatch, capsys):
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(ROOT)  # the example names configs/smoke.yaml
    exec(compile(blocks[0], "docs/api.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "two_layer [32]"
    assert lines[1].startswith("completed 0.")
    assert lines[3] == "(2, 10) two_layer"


def test_importing_cs_nets_loads_neither_numpy_nor_the_library():
    code = "import sys, cs_nets; print(sorted(m for m in sys.modules if m.startswith(('numpy', 'cs_nets'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "['cs_nets']"


def test_the_api_names_are_documented():
    import cs_nets

    text = (ROOT / "docs" / "api.md").read_text()
    for name in cs_nets.__all__:
        if name != "__version__":
            assert f"cs_nets.{name}(" in text and getattr(cs_nets, name).__doc__
