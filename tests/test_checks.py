"""Bad input is refused before anything runs, in one line naming the option; a dry run needs no API key."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agora import AgoraError
from agora.checks import check_cell
from conftest import ROOT, compose_cfg


@pytest.mark.parametrize("overrides,says", [
    (["budget.n=-3"], "budget.n=-3: the number of examples to keep must be a whole number >= 1"),
    (["budget.n=0"], "budget.n=0"),
    (["budget.n=2.5"], "budget.n=2.5"),
    (["budget=usd"], "budget=usd needs the dollars to spend: add budget.usd="),
    (["budget=usd", "budget.usd=-1"], "budget.usd=-1: the dollars to spend must be > 0"),
    (["budget.max_usd=-0.5"], "budget.max_usd=-0.5: the dollar cap must be >= 0"),
    (["budget.max_attempts_factor=0.5"], "budget.max_attempts_factor=0.5"),
    (["domain.sources.synthetic_gsm.local=/nonexistent.jsonl"],
     "domain.sources.synthetic_gsm.local=/nonexistent.jsonl: no such file or folder"),
    (["domain.sources.synthetic_gsm.local=" + str(ROOT / "README.md")], "synthetic_gsm is made by Agora itself"),
    (["domain.sources.gsm8k.local=" + str(ROOT / "README.md")],
     "this cell never reads gsm8k (budget.data=embedded reads ['synthetic_gsm'])"),
    (["domain=code", "domain.sources.mbpp.local=/no/such/mbpp.jsonl", "budget.data=hub"],
     "domain.sources.mbpp.local=/no/such/mbpp.jsonl: no such file or folder"),
    (["domain.scoring.synthetic_gsm.scorer=rouge"], "unknown scorer 'rouge'; known: ['math_answers', 'sandbox',"),
    (["~domain.scoring.synthetic_gsm"], "benchmark 'synthetic_gsm' has no domain.scoring.synthetic_gsm entry"),
    (["domain.scoring.synthetic_gsm.scorer=domain"], "scorer: domain needs SCORER_VERSION in agora.domains.math"),
])
@pytest.mark.parametrize("stage", ["generate", "train", "evaluate"])
def test_bad_input_is_one_line_naming_the_option(stage, overrides, says):
    with pytest.raises(AgoraError) as e:
        check_cell(compose_cfg(stage, overrides))
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides", [[], ["budget=usd", "budget.usd=2"], ["budget=n10k"],
                                       ["domain=code", "budget.data=hub", "domain.sources.mbpp.local=" +
                                        str(ROOT / "README.md")],
                                       ["mode=response_generation", "budget.data=hub",
                                        "domain.sources.magpie_math.local=" + str(ROOT / "README.md")]])
def test_good_input_passes(overrides):
    check_cell(compose_cfg("generate", overrides))   # a local file that the cell reads is fine


def test_a_refused_run_exits_2_before_anything_is_written(tmp_path):
    store = tmp_path / "store"
    p = subprocess.run([sys.executable, str(ROOT / "generate.py"), "budget.n=-3"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "AGORA_STORE": str(store), "WANDB_MODE": "offline"})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == ("agora generate: error: budget.n=-3: the number of examples to keep "
                                                 "must be a whole number >= 1")
    assert not store.exists() and not list(tmp_path.glob("outputs/*/*/wandb"))   # no store, no W&B run


def test_dry_run_prints_the_cost_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    p = subprocess.run([sys.executable, str(ROOT / "generate.py"), "generator=gpt4o", "budget=usd", "budget.usd=2",
                        "budget.data=embedded", "dry_run=true", "tracking=none"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**env, "AGORA_STORE": str(tmp_path / "store")})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "budget=usd: $2 / est. $" in p.stdout and "$OPENAI_API_KEY is not set" in p.stdout
    assert not (tmp_path / "store" / "requests").exists()


def test_a_sweep_accepts_locals_that_other_cells_read_but_not_unknown_sources(tmp_path):
    """A -m sweep gives every cell the same overrides: a local that another mode or domain reads is fine there
    (the 54-cell dry run, benchmarks/dry_run_agorabench.py), a source that no domain defines is still refused."""
    readme = str(ROOT / "README.md")
    p = subprocess.run([sys.executable, str(ROOT / "generate.py"), "-m", "budget.data=embedded", "dry_run=true",
                        "tracking=none", f"store_dir={tmp_path / 'store'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                        f"++domain.sources.conala.local={readme}", f"++domain.sources.magpie_math.local={readme}",
                        f"++domain.sources.no_such_source.local={readme}"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    errors = [f.read_text() for f in (tmp_path / "sweep").rglob("error.txt")]
    assert len(errors) == 1 and "domain.sources.no_such_source.local" in errors[0], errors
    assert "conala" not in errors[0] and "magpie_math" not in errors[0]
