"""`eval.backend=vllm` against the real thing: vLLM's CPU build serving the smoke student (the venv of
tests/vllm_server.py), next to `eval.backend=hf` on the same problems.

- greedy answers agree with HF `generate` on at least 95% of problems (the disagreements are printed, with both
  completions, so a change in either backend shows what moved);
- an evaluation SIGKILLed mid-way leaves no server behind and resumes from the request cache, resending nothing
  that finished;
- the server is gone after the stage, whether the stage returned or raised.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agora.infer import GenConfig
from agora.scoring.math_answers import extract_answer
from conftest import ROOT, compose_cfg

pytestmark = pytest.mark.slow
N = 40   # synthetic GSM test problems: enough for a 95% bar to mean 38 of 40


def vllm_processes(model_dir: Path) -> list[int]:
    """Pids whose command line is a vLLM server of `model_dir` (or one of its engine processes)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "vllm" in cmd and str(model_dir) in cmd:
                out.append(int(p.name))
    return out


def gone(model_dir: Path, within_s: float = 60) -> bool:
    deadline = time.monotonic() + within_s
    while vllm_processes(model_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


@pytest.fixture(scope="module")
def setup(tmp_path_factory, store_dir):
    """(venv python, smoke student folder, composed config with eval.backend=vllm, the problems)."""
    if os.environ.get("AGORA_SKIP_VLLM") == "1":
        pytest.skip("AGORA_SKIP_VLLM=1: the tests against a real vLLM server are skipped")
    from agora.stages import split_rows
    from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student
    from vllm_server import ensure_venv

    log = tmp_path_factory.mktemp("vllm_eval") / "venv.log"
    py = ensure_venv(log)
    model = materialize_student("gguf_package", SMOLLM2_NAME, store_dir / "models", package=SMOLLM2_PACKAGE,
                                filename=SMOLLM2_FILENAME)
    cfg = vllm_cfg(str(py))
    rows = split_rows(cfg, ["synthetic_gsm"], "test", N)
    return py, Path(model), cfg, rows


def vllm_cfg(python: str):
    """The real evaluate config, served by the test venv's vLLM."""
    from omegaconf import open_dict

    from vllm_server import server_env

    cfg = compose_cfg("evaluate", ["eval.backend=vllm", f"eval.vllm.python={python}", f"budget.eval_limit={N}",
                                   "eval.vllm.max_model_len=2048"])
    with open_dict(cfg):
        cfg.eval.vllm.env = server_env()
    return cfg


def run(cfg, store_root: Path, model: Path, rows: list[dict], backend: str, key: str) -> list[str]:
    from omegaconf import open_dict

    from agora.stages.evaluate import completions
    from agora.store import Store

    with open_dict(cfg):
        cfg.eval.backend = backend
    gen = GenConfig(max_new_tokens=cfg.eval.max_new_tokens, temperature=0.0, top_p=cfg.eval.top_p,
                    repetition_penalty=cfg.eval.repetition_penalty, batch_size=cfg.eval.batch_size, seed=0,
                    threads=cfg.eval.threads)
    out = completions(cfg, Store(store_root), label="base", model_path=str(model), model_key=f"test:{model.name}",
                      key=key, benchmarks={"synthetic_gsm": rows}, fewshot=[], gen=gen)
    return out["synthetic_gsm"]


def test_greedy_answers_agree_with_hf_and_no_server_is_left(setup, tmp_path):
    _, model, cfg, rows = setup
    hf = run(cfg, tmp_path, model, rows, "hf", "agree")
    served = run(cfg, tmp_path, model, rows, "vllm", "agree")
    assert gone(model, 5), vllm_processes(model)           # stopped when the stage returned
    a = [extract_answer(t) for t in hf]
    b = [extract_answer(t) for t in served]
    differ = [(r["id"], x, y, h[-200:], s[-200:]) for r, x, y, h, s in zip(rows, a, b, hf, served) if x != y]
    for d in differ:
        print("disagree", json.dumps(d))
    assert len(rows) == N and sum(t.strip() != "" for t in served) == N   # every problem was answered
    assert len(differ) <= N * 0.05, differ
    cache = tmp_path / "requests" / "eval" / "base-agree.jsonl"
    assert len(cache.read_text().splitlines()) == N             # every completion went through the engine's cache


def test_a_sigkilled_evaluation_leaves_no_server_and_resumes(setup, tmp_path):
    py, model, cfg, rows = setup
    script = tmp_path / "eval.py"
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    script.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from pathlib import Path
        from test_eval_backend import run, vllm_cfg
        rows = json.loads(Path({str(tmp_path / 'rows.json')!r}).read_text())
        out = run(vllm_cfg({str(py)!r}), Path({str(tmp_path)!r}), Path({str(model)!r}), rows, "vllm", "kill")
        print("DONE", len(out))
    """))
    cache = tmp_path / "requests" / "eval" / "base-kill.jsonl"
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not (cache.exists() and len(cache.read_text().splitlines()) >= 5):
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no completion cached in 10 minutes"
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = len(cache.read_text().splitlines())
    assert 5 <= before < N
    assert gone(model), vllm_processes(model)   # the server dies with its parent (PR_SET_PDEATHSIG)
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and f"DONE {N}" in again.stdout, again.stdout[-2000:] + again.stderr[-3000:]
    lines = [json.loads(x) for x in cache.read_text().splitlines()]
    assert len(lines) == N and len({x["key"] for x in lines}) == N   # nothing finished was sent twice
    assert gone(model, 5)


def test_the_server_is_stopped_when_the_stage_raises(setup, tmp_path):
    # Prompts longer than the server's context: every request is refused (HTTP 400, permanent), the stage raises.
    from omegaconf import open_dict

    _, model, cfg, rows = setup
    with open_dict(cfg):
        cfg.eval.vllm.max_model_len = 64
    try:
        with pytest.raises(RuntimeError, match="prompts failed"):
            run(cfg, tmp_path, model, [{**r, "question": r["question"] * 20} for r in rows[:4]], "vllm", "raise")
    finally:
        with open_dict(cfg):
            cfg.eval.vllm.max_model_len = 2048
    assert gone(model, 5), vllm_processes(model)

