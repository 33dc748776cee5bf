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


def compose_cfg(stage: str = "generate", overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=stage, overrides=overrides or [], return_hydra_config=False)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    """One artifact store per test session, so the packaged model is converted once."""
    return tmp_path_factory.mktemp("agora_store")
