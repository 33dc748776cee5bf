"""What keys each product of the store: the parts of the composed config that change it, and nothing else.

The store (agora/store.py) hashes these specs into folder names, so a setting that changes a product must be here
(or the cache goes stale) and a setting that does not must stay out (or a cache hit is missed): concurrency, retries,
threads, logging and the process layout are left out on purpose. These are config readers, used by the stages.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError, controls
from agora.hardware import resolve_bf16
from agora.store import digest

if TYPE_CHECKING:
    from agora.modes import Template


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def cell_template(cfg: DictConfig) -> Template:
    """The cell's prompt choice (agora/modes: `load_template`): `mode.prompts`, `mode.template`, the prompt format's
    style and the original's checkout (`originals.data_agora`), hash-checked where it is the original's."""
    from agora.modes import load_template

    return load_template(cfg.domain._target_, cfg.mode.name, cfg.mode.template, prompts=cfg.mode.prompts,
                         style=cfg.prompt_format.style, data_agora=cfg.originals.data_agora)


def cell_draws(cfg: DictConfig) -> tuple[list[str], list[str]]:
    """`(themes, opening words)` that instance generation draws into the cell's prompts: the domain package's, or
    under `mode.prompts=original` the original's own lists, read from `originals.data_agora`'s run.py."""
    from agora import originals
    from agora.domains import get_domain

    if cfg.mode.prompts == "original":
        return originals.draws(cfg.originals.data_agora, cfg.domain.name)
    d = get_domain(cfg.domain._target_)
    return list(d.THEMES), list(d.OPENERS)


def data_spec(cfg: DictConfig, template: Template | None = None) -> dict:
    """Everything that changes the generated data. Concurrency, retries and caps do not. The meta-prompt and the
    system message count by their content (sha256), not by their path or by `mode.prompts`: the same file anywhere
    is the same cell, an edited one a new cell. `template` is the cell's (`cell_template`), loaded here when not
    given."""
    from agora.domains import get_domain
    from agora.modes import get_mode

    template = template or cell_template(cfg)
    draws = get_domain(cfg.domain._target_)   # the themes and opening words drawn into the prompts

    g = cfg.generator
    # The constraint itself (a llama.cpp grammar), so that a changed grammar is a new cell rather than a stale hit.
    constraint = get_mode(cfg.mode.name).constraint(cfg.prompt_format.style, draws.ANSWER_GBNF) if g.constrain else None
    return {
        "generator": {"provider": g.provider, "model": g.model, "base_url": None if g.server else g.base_url,
                      "server": _plain(g.server), "sampling": _plain(g.sampling), "batch": g.batch,
                      "constrain": g.constrain, "constraint": constraint},
        "domain": {"name": cfg.domain.name, "version": draws.VERSION},
        "seeds": _plain(cfg.domain_mode.seeds)[cfg.budget.data] if cfg.domain_mode is not None else None,
        "pool": _pool_spec(cfg),
        "sources": _plain(cfg.domain.sources),
        "mode": {**{k: v for k, v in _plain(cfg.mode).items() if k not in ("template", "prompts")},
                 "template_version": template.version, "template_sha256": template.sha256,
                 "system_sha256": template.system_sha256,
                 "draws": digest(list(cell_draws(cfg)))},
        "budget": {"n": cfg.budget.n, "usd": cfg.budget.usd, "data": cfg.budget.data, "n_seeds": cfg.budget.n_seeds},
        "prompt_format": _plain(cfg.prompt_format),
        "seed": cfg.seed,
        "contamination": _plain(cfg.contamination) if cfg.contamination.drop else None,   # only if it changes data
        # How examples were checked, only where it is not Agora's default, so other keys stay as they were.
        **({"validation": v} if (v := _validation_spec(cfg)) else {}),
        # A control's human data and its corruption (agora/controls.py); only there, so other keys stay as they were.
        **({"control": _control_spec(cfg)} if controls.is_control(g.provider) else {}),
    }


def _validation_spec(cfg: DictConfig) -> dict | None:
    """`validation.*` when it is not the default (Agora's rules, no length check), with the tokenizer that counts the
    length: the student, its chat format and the system prompt SFT renders with."""
    v = cfg.validation
    if v.rules == "agora" and v.max_tokens is None and v.compile is None:
        return None
    return {"rules": v.rules, "max_tokens": v.max_tokens, **({} if v.compile is None else {"compile": v.compile}),
            "tokenizer": None if v.max_tokens is None else {"student": cfg.student.name, "model_id": cfg.student.model_id,
                                                            "chat_template": cfg.student.chat_template,
                                                            "system": cfg.domain.system_prompt}}


def _control_spec(cfg: DictConfig) -> dict:
    """What makes a control's data beyond the cell (agora/controls.py): the human sources, the held-out benchmarks and
    the corruption, so a different rate or method is a different data set."""
    data = cfg.budget.data
    return {"human": list(cfg.domain.human[data]), "held_out": list(cfg.domain.benchmarks[data]),
            "corrupt": _plain(cfg.generator.corrupt)}


def _pool_spec(cfg: DictConfig) -> dict | None:
    """The seed pool's identity: its filters (pool.VERSION), the seeded sample sizes, and the student-token limit
    with the student whose tokenizer applies it. The seed itself is `seed` in the spec."""
    from agora.domains import pool

    if cfg.domain_mode is None:
        return None
    dm = cfg.domain_mode
    limit = dm.max_seed_tokens
    return {"version": pool.VERSION, "sample": _plain(dm.sample), "max_seed_tokens": limit,
            "tokenizer": None if limit is None else {"student": cfg.student.name, "model_id": cfg.student.model_id,
                                                     "chat_template": cfg.student.chat_template,
                                                     "system": cfg.domain.system_prompt}}


def include_seeds(cfg: DictConfig) -> bool:
    """Whether instance generation's seeds join the cell's training rows: `train.include_seeds` true or false, or
    `domain`: the domain's `modes.instance_generation.seeds_in_training` (the original's data sets: math only)."""
    v = cfg.train.include_seeds
    if v == "domain":
        ig = (cfg.domain.get("modes") or {}).get("instance_generation") or {}
        if "seeds_in_training" not in ig:
            raise AgoraError(f"train.include_seeds=domain, but domain={cfg.domain.name} sets no "
                             "modes.instance_generation.seeds_in_training (true or false) in its YAML")
        return bool(ig.seeds_in_training)
    if not isinstance(v, bool):
        raise AgoraError(f"train.include_seeds={v!r}; known: true, false, domain")
    return v


def train_spec(cfg: DictConfig) -> dict:
    """The student and the training settings (threads and logging do not change the weights)."""
    # Threads, logging, checkpoint cadence and the process layout do not change the weights (a 2-process ZeRO-3
    # run matches one process to 1e-6; tests/test_distributed.py), so they are not part of the key.
    skip = ("threads", "logging_steps", "eval_steps", "save_steps", "launch")
    t = {k: v for k, v in _plain(cfg.train).items() if k not in skip}
    t["include_seeds"] = include_seeds(cfg)   # what it resolved to: `domain` keys as the value it stands for
    if t.get("max_grad_norm") == 1.0:   # the Trainer's default, which every student before the field was trained with
        del t["max_grad_norm"]
    # What ran: `auto` is a different product on an AMX Xeon and an EPYC (and fp32 under DeepSpeed on a CPU).
    t["bf16"] = resolve_bf16(t["bf16"], deepspeed=bool(cfg.deepspeed.config))
    return {"student": _plain(cfg.student), "train": t, "system_prompt": cfg.domain.system_prompt,
            "deepspeed": cfg.deepspeed.config, "seed": cfg.train.seed}


def eval_spec(cfg: DictConfig, benchmarks: list[str]) -> dict:
    """The benchmark settings of an evaluation: inference settings, the domain's (its sampling temperature), the
    benchmark sources, the problem count, the domain's version, and each benchmark's split, scorer and its version."""
    from agora.domains import get_domain
    from agora.scoring import scorer_version

    domain = get_domain(cfg.domain._target_)
    e = {k: v for k, v in _plain(cfg.eval).items() if k not in ("threads", "batch_size", "bf16", "backend", "vllm")}
    if resolve_bf16(cfg.eval.get("bf16", False), "eval.bf16"):   # bf16 weights: other numerics; fp32 keys unchanged
        e["dtype"] = "bfloat16"
    if (backend := eval_backend(cfg)) != "hf":   # its numerics differ slightly (kernels, batching); hf keys unchanged
        e["backend"] = backend
    return {"benchmarks": benchmarks, "sources": {b: _plain(cfg.domain.sources).get(b) for b in benchmarks},
            "eval": {**e, **_plain(cfg.domain.eval)}, "limit": cfg.budget.eval_limit, "domain_version": domain.VERSION,
            "scoring": {b: {"split": s, "scorer": sc, "version": scorer_version(sc, domain)}
                        for b in benchmarks for s, sc in [scoring_of(cfg, b)]}, "seed": cfg.seed}


def scoring_of(cfg: DictConfig, benchmark: str) -> tuple[str, str]:
    """(split, scorer) of one of the domain's benchmarks (`domain.scoring.<benchmark>` in its YAML)."""
    s = (cfg.domain.get("scoring") or {}).get(benchmark)
    if s is None:
        raise AgoraError(f"benchmark {benchmark!r} has no domain.scoring.{benchmark} entry (its split and scorer, e.g. "
                         f"{{split: test, scorer: math_answers}}) in domain={cfg.domain.name}'s YAML")
    return str(s.split), str(s.scorer)


def eval_backend(cfg: DictConfig) -> str:
    """`eval.backend` resolved: hf or vllm (`auto`: vllm where CUDA and vLLM are present)."""
    from agora.generators.vllm_server import eval_backend as of_eval

    return of_eval(cfg.eval)
