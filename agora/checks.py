"""Refuse bad input before anything runs, in one line that names the option to fix.

Each stage calls `check_cell(cfg)` first, before tracking starts, a server is launched or a cent is spent. Without
it, `budget.n=-3` committed an empty product, `budget=usd` without `budget.usd` ended in an OmegaConf traceback
about `intrinsic.max_usd`, and a `local=` file that no stage reads was silently ignored.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError

_HINTS = {"budget.usd": "budget=usd needs the dollars to spend: add budget.usd=<USD>, e.g. budget.usd=50"}


def check_cell(cfg: DictConfig) -> None:
    missing = sorted(_missing(OmegaConf.to_container(cfg, resolve=False)))
    if missing:
        k = missing[0]
        raise AgoraError(_HINTS.get(k, f"{k} has no value (`???` in its config); set it with {k}=..."))
    _check_budget(cfg.budget)
    _check_sources(cfg)
    _check_scoring(cfg)
    _check_prompts(cfg)
    _check_arena_prompt(cfg)
    from agora import controls

    if controls.is_control(cfg.generator.provider):   # generator=human / human_corrupted: its corruption
        c = cfg.generator.corrupt
        controls.check_corrupt(None if c is None else OmegaConf.to_container(c, resolve=True), cfg.domain._target_)


def _check_scoring(cfg: DictConfig) -> None:
    """Every benchmark the cell evaluates has a split and a known scorer (domain.scoring), before any cost."""
    from agora.domains import get_domain
    from agora.scoring import scorer_version
    from agora.specs import scoring_of

    domain = get_domain(cfg.domain._target_)
    for b in cfg.domain.benchmarks[cfg.budget.data]:
        _, scorer = scoring_of(cfg, b)
        scorer_version(scorer, domain)


def _check_prompts(cfg: DictConfig) -> None:
    """The cell's meta-prompt and system message load, and under `mode.prompts=original` the checkout is there and
    every file it reads has the pinned commit's sha256: a missing or changed checkout is one line here, not a
    traceback after tracking started."""
    from agora.specs import cell_template

    if cfg.mode.prompts != "original":   # Agora's own files: the stage loads them, with its own one-line errors
        return
    if cfg.prompt_format.response_format not in (None, "text"):
        raise AgoraError(f"prompt_format.response_format={cfg.prompt_format.response_format} enforces Agora's JSON "
                         "schema, which the original's JSON files do not ask for: use prompt_format=json with "
                         "mode.prompts=original, or mode.prompts=agora")
    cell_template(cfg)


def _check_arena_prompt(cfg: DictConfig) -> None:
    """A cell that will be judged on Arena-Hard has its judge prompt (`eval.arena_hard_prompt`: under the preset the
    original's, from `originals.arena_hard_auto`, hash-checked) before it generates, trains or evaluates anything."""
    if "arena_hard" in cfg.domain.benchmarks[cfg.budget.data]:
        from agora.scoring.judge import arena_prompt

        arena_prompt(cfg.eval.arena_hard_prompt, cfg.originals.arena_hard_auto)


def _missing(node: object, path: str = "") -> list[str]:
    """Keys whose value is `???`, found without resolving (an interpolation to one would raise first)."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _missing(v, f"{path}{key}.")]
    if isinstance(node, list):
        return [k for i, v in enumerate(node) for k in _missing(v, f"{path}{i}.")]
    return [path[:-1]] if node == "???" else []


def _check_budget(b: DictConfig) -> None:
    if b.n is not None and (isinstance(b.n, bool) or not isinstance(b.n, int) or b.n < 1):
        raise AgoraError(f"budget.n={b.n}: the number of examples to keep must be a whole number >= 1")
    if b.n is None and b.usd is None:
        raise AgoraError("the budget has neither budget.n (examples) nor budget.usd (dollars); set one")
    if b.usd is not None and not b.usd > 0:
        raise AgoraError(f"budget.usd={b.usd}: the dollars to spend must be > 0")
    if b.max_usd is not None and not b.max_usd >= 0:
        raise AgoraError(f"budget.max_usd={b.max_usd}: the dollar cap must be >= 0 (null: no cap)")
    if not b.max_attempts_factor >= 1:
        raise AgoraError(f"budget.max_attempts_factor={b.max_attempts_factor}: must be >= 1 (requests per example "
                         "kept at most)")


def sources_read(cfg: DictConfig) -> set[str]:
    """The data sets some stage of this cell reads: seeds, benchmarks, and the human data of reference=human_sft."""
    data = cfg.budget.data
    names = set(cfg.domain.benchmarks[data]) | set(cfg.domain.human[data])
    if cfg.domain_mode is not None:
        names |= set(cfg.domain_mode.seeds[data])
    return names


def _check_sources(cfg: DictConfig) -> None:
    from agora.domains import get_domain

    made_here = set(getattr(get_domain(cfg.domain._target_), "GENERATED", ()))
    read = sources_read(cfg)
    for name, source in cfg.domain.sources.items():
        local = source.get("local")
        if not local:
            continue
        opt = f"domain.sources.{name}.local={local}"
        if not Path(str(local)).expanduser().exists():
            raise AgoraError(f"{opt}: no such file or folder")
        if name in made_here:
            raise AgoraError(f"{opt}: {name} is made by Agora itself, never loaded from a file; drop the override")
        if name not in read:
            if _in_sweep() and name in _sources_of_every_domain():
                continue   # a sweep's overrides reach all its cells: another cell (or domain) of it reads this one
            raise AgoraError(f"{opt}: this cell never reads {name} (budget.data={cfg.budget.data} reads "
                             f"{sorted(read)}); drop the override or choose a cell that uses it")


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _sources_of_every_domain() -> set[str]:
    """The source names any domain config defines (conf/domain/*.yaml in the run's config folders). A `-m` sweep over
    several domains and modes gives every cell the same `++domain.sources.<name>.local=` overrides, so a local file is
    fine there when some domain reads it; a name no domain has is still a typo."""
    from hydra.core.hydra_config import HydraConfig

    names: set[str] = set()
    for src in HydraConfig.get().runtime.config_sources:
        if src.schema == "file":
            for f in sorted(Path(src.path, "domain").glob("*.yaml")):
                names |= set(OmegaConf.load(f).get("sources") or {})
    return names
