"""The import layers of pyproject.toml's `[tool.importlinter]` contract hold, and the contract catches a wrong import.

Stages on top read the config; libraries below take typed arguments and import only layers under them (README,
"Extending Agora"). The second test copies the package, adds one upward import (the store reaching into a stage) and
checks that the same contract names it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    return subprocess.run([*cmd, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layer_contract_is_kept():
    p = lint_imports(ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 kept, 0 broken" in p.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "agora", tmp_path / "agora", ignore=shutil.ignore_patterns("__pycache__"))
    store = tmp_path / "agora" / "store.py"
    store.write_text(store.read_text() + "\n\ndef _upward():\n    from agora.stages import split_rows\n"
                     "    return split_rows\n")
    p = lint_imports(tmp_path, pythonpath=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "0 kept, 1 broken" in p.stdout
    assert "agora.store -> agora.stages" in p.stdout, p.stdout
