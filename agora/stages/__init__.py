"""The three stages of a cell, on top of the libraries: `generate`, `train` and `evaluate`, each a `run(cfg, tracker)`.

A stage is the only code that reads the composed config (`DictConfig`): it turns the cell's options into typed
arguments for the libraries below (`agora.sources`, `agora.domains`, `agora.engine`, `agora.train`, `agora.scoring`,
`agora.metrics`), which never see a config. The helpers here are the config readers the three stages share.
The import layers are a contract that a test runs (`.importlinter`, tests/test_layers.py).
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from agora import sources
from agora.domains import get_domain
from agora.specs import scoring_of


def rerun_command(stage: str) -> str:
    """The command that runs `stage` for the cell of the current run (for 'missing upstream' errors)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (a test calling run(cfg) directly)
        overrides = []
    return " ".join(["python", f"{stage}.py", *overrides])


def split_rows(cfg: DictConfig, names: list[str], split: str, limit: int | None,
               caps: dict[str, int] | None = None) -> list[dict]:
    """Rows of the cell's named data sets (`domain.sources`), through its domain; `caps` (a mode's `sample`) caps a
    source below `limit`."""
    return sources.load_split(get_domain(cfg.domain._target_), OmegaConf.to_container(cfg.domain.sources, resolve=True),
                              names, split, limit, cfg.seed, caps)


def benchmark_rows(cfg: DictConfig, limit: int | None = None) -> list[dict]:
    """The rows of every benchmark of the cell's domain at its data scale, each from its own split."""
    return [r for b in cfg.domain.benchmarks[cfg.budget.data]
            for r in split_rows(cfg, [b], scoring_of(cfg, b)[0], limit)]


def without_benchmarks(cfg: DictConfig, rows: list[dict]) -> list[dict]:
    """`rows` minus the domain's benchmark questions and tasks (`sources.held_out`)."""
    return sources.held_out(rows, benchmark_rows(cfg))


def human_rows(cfg: DictConfig) -> list[dict]:
    """The domain's human data in the order reference=human_sft trains on it and generator=human replays it:
    `domain.human[budget.data]`, budget.n_seeds of them, benchmark questions and tasks held out."""
    return without_benchmarks(cfg, split_rows(cfg, list(cfg.domain.human[cfg.budget.data]), "train",
                                              cfg.budget.n_seeds))
