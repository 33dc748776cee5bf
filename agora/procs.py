"""Child processes that never outlive Agora: the llama.cpp and vLLM servers and the torchrun launcher.

A Hydra process killed by SIGKILL (OOM killer, `kill -9`, a cluster pre-emption) runs no cleanup, so its children
would live on: a server holding a port and RAM, or training ranks writing checkpoints under the rerun that resumes
them. `die_with_parent` is a `preexec_fn` that asks Linux to send SIGTERM to the child when its parent dies.
"""
from __future__ import annotations

import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`subprocess.Popen(..., preexec_fn=die_with_parent)`: SIGTERM when the parent dies (Linux; a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate(proc, grace_s: float) -> None:
    """Stop a child: SIGTERM, then SIGKILL if it has not exited within `grace_s` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
