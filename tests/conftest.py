"""Shared test plumbing: compose the real configs, a per-session store, and the paths to ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's OpenMP threads spin while they wait; with a server, a trainer and an evaluator sharing 2 cores that
# spinning dominates (a 32-token generation: 9.1 s spinning, 0.8 s passive, measured at load 8).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def needs_shared(*parts: str) -> pytest.MarkDecorator:
    """Skip a test whose ../shared/data file is absent, except under CI=true, where that is a failure: a clone
    that lost the data beside it must not pass by skipping."""
    path = SHARED_DATA.joinpath(*parts)
    if path.exists():
        return pytest.mark.shared_data
    if os.environ.get("CI") == "true":
        return pytest.mark.usefixtures("_fail_missing_shared_data")
    return pytest.mark.skip(reason=f"{path} is not beside the repo (with CI=true this fails instead)")


@pytest.fixture
def _fail_missing_shared_data(request):
    pytest.fail(f"CI=true and ../shared/data is incomplete ({SHARED_DATA}): {request.node.name} needs it")


def compose_cfg(stage: str = "generate", overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=stage, overrides=overrides or [], return_hydra_config=False)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    """One artifact store per test session, so the packaged model is converted once."""
    return tmp_path_factory.mktemp("agora_store")


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory, store_dir):
    """(base_url, model name) of one vLLM CPU server, serving SmolLM2 over OpenAI and Anthropic APIs. One module
    uses it, so it lives as long as that module: idle, it would hold about 4 GB and some CPU for the rest of the run.

    The first use builds vLLM's venv (tests/vllm_server.py); a failure there fails the tests that need it, so a
    missing server is never mistaken for a pass. AGORA_SKIP_VLLM=1 skips them instead, saying so;
    AGORA_VLLM_URL=http://HOST:PORT uses a server already running (it must serve SmolLM2 as "smol").
    """
    if os.environ.get("AGORA_SKIP_VLLM") == "1":
        pytest.skip("AGORA_SKIP_VLLM=1: the tests against a real vLLM server are skipped")
    if os.environ.get("AGORA_VLLM_URL"):
        yield os.environ["AGORA_VLLM_URL"].rstrip("/"), "smol"
        return
    from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student
    from vllm_server import vllm_server as start

    model = materialize_student("gguf_package", SMOLLM2_NAME, store_dir / "models", package=SMOLLM2_PACKAGE,
                                filename=SMOLLM2_FILENAME)  # the folder the e2e tests' student reuses
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with start(model, log=log) as url:
        yield url, "smol"
