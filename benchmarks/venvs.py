"""A venv of a benchmark's own for an original's code (evalplus, arena-hard-auto's scoring), never Agora's deps.

The benchmarks that run an original beside Agora install it into a folder they own, once, and reuse it later."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def venv_python(where: Path, packages: list[str]) -> Path:
    """The interpreter of the venv at `where`, created with `packages` installed if it does not exist yet."""
    py = where / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    return py
