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


# ---------------------------------------------------------------- the one vLLM server of a test run
_VLLM: dict = {}   # {"server": (base_url, served name), "stack": ExitStack} while it runs


def _uses_vllm(item) -> bool:
    return "vllm_server" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """The tests that use the shared vLLM server run one after another, last: the server starts once per run and
    stops after the last of them (idle, it holds about 4 GB). On a fresh machine vLLM's venv (about 2 minutes of
    downloads and unpacking) is built in the background meanwhile, while the other tests run."""
    users = [i for i in items if _uses_vllm(i)]
    items[:] = [i for i in items if not _uses_vllm(i)] + users
    if any(_uses_vllm(i) or i.path.name == "test_eval_backend.py" for i in items):
        _build_vllm_venv_in_background()


def _build_vllm_venv_in_background() -> None:
    """Start `ensure_venv` in a thread when the venv is missing; its users call it again and wait on its lock, and a
    build that failed is tried again there, so its error fails those tests. Joined before the session ends."""
    if os.environ.get("AGORA_SKIP_VLLM") == "1" or os.environ.get("AGORA_VLLM_URL"):
        return
    import tempfile
    import threading

    from vllm_server import ensure_venv, venv_ready

    if venv_ready():
        return
    log = Path(tempfile.gettempdir()) / f"agora-vllm-venv-{os.getpid()}.log"
    _VLLM["build"] = threading.Thread(target=lambda: _quietly(ensure_venv, log), name="vllm-venv", daemon=True)
    _VLLM["build"].start()


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:   # the venv's users call ensure_venv again and fail with its error
        pass


def pytest_sessionfinish(session, exitstatus):
    if "build" in _VLLM:   # never leave pip half-way through the venv
        _VLLM.pop("build").join()


def pytest_runtest_teardown(item, nextitem):
    if "stack" in _VLLM and (nextitem is None or not _uses_vllm(nextitem)):
        _VLLM.pop("stack").close()
        _VLLM.pop("server", None)


@pytest.fixture
def vllm_server(tmp_path_factory, store_dir):
    """(base_url, served model name) of the run's one vLLM CPU server: SmolLM2-135M-Instruct, the folder the stages
    convert into the session store, served by Agora's evaluation launcher (`eval_server`: fp32, decoding defaults from
    the request alone, `--enforce-eager`), so it answers the OpenAI and Anthropic protocols and the evaluation
    backend's requests alike. Started by its first user, stopped after its last (the users run together:
    `pytest_collection_modifyitems`).

    The first use builds vLLM's venv (tests/vllm_server.py); a failure there fails the tests that need it, so a
    missing server is never mistaken for a pass. AGORA_SKIP_VLLM=1 skips them instead, saying so;
    AGORA_VLLM_URL=http://HOST:PORT uses a server already running (it must serve that folder as "model", in fp32).
    """
    if os.environ.get("AGORA_SKIP_VLLM") == "1":
        pytest.skip("AGORA_SKIP_VLLM=1: the tests against a real vLLM server are skipped")
    if os.environ.get("AGORA_VLLM_URL"):
        return os.environ["AGORA_VLLM_URL"].rstrip("/"), "model"
    if "server" not in _VLLM:
        from contextlib import ExitStack

        from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student
        from vllm_server import eval_settings
        from agora.generators.vllm_server import eval_server

        model = materialize_student("gguf_package", SMOLLM2_NAME, store_dir / "models", package=SMOLLM2_PACKAGE,
                                    filename=SMOLLM2_FILENAME)  # the folder the e2e tests' student reuses
        log = tmp_path_factory.mktemp("vllm") / "vllm.log"
        stack = ExitStack()
        _VLLM["server"] = stack.enter_context(eval_server(model, log=log, settings=eval_settings(log),
                                                          dtype="float32")), "model"
        _VLLM["stack"] = stack
    return _VLLM["server"]
