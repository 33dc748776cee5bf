"""`eval.backend=vllm` against the real thing: vLLM's CPU build (the venv of tests/vllm_server.py) serving the smoke
student through Agora's own launcher, next to `eval.backend=hf` on the same problems.

- an evaluation SIGKILLed mid-way leaves no server behind, and its rerun resumes from the request cache, resending
  nothing that finished;
- the server is gone after the stage, whether the stage returned or raised;
- greedy answers agree with HF `generate` on at least 95% of problems (the disagreements are printed with both
  completions, so a change in either backend shows what moved).

Three server starts of its own (the killed run, its rerun, the raising stage), each with `--enforce-eager` (no
torch.compile warm-up: about a minute less a start on 2 cores; the decoding is the same); the served perplexity uses
the run's one shared server (conftest.py `vllm_server`).
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
N = 40   # synthetic GSM test problems: a 95% bar means at most 2 of 40 may differ


def vllm_processes(model_dir: Path) -> list[int]:
    """Pids whose command line is a vLLM server of `model_dir`."""
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


def vllm_children() -> list[str]:
    """vLLM's engine processes, whatever their parent (they rename themselves VLLM::EngineCore, VLLM::Worker)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().startswith("VLLM::"):
                    out.append(f"{p.name} {(p / 'comm').read_text().strip()}")
            except OSError:
                continue
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
    """(venv python, smoke student folder, the problems, the base's few-shot turns)."""
    if os.environ.get("AGORA_SKIP_VLLM") == "1":
        pytest.skip("AGORA_SKIP_VLLM=1: the tests against a real vLLM server are skipped")
    from agora.stages import split_rows
    from agora.stages.evaluate import fewshot_examples
    from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student
    from vllm_server import ensure_venv

    py = ensure_venv(tmp_path_factory.mktemp("vllm_eval") / "venv.log")
    model = materialize_student("gguf_package", SMOLLM2_NAME, store_dir / "models", package=SMOLLM2_PACKAGE,
                                filename=SMOLLM2_FILENAME)
    cfg = vllm_cfg(str(py))
    return py, Path(model), split_rows(cfg, ["synthetic_gsm"], "test", N), fewshot_examples(cfg)


def vllm_cfg(python: str, *overrides: str):
    """The real evaluate config, served by the test venv's vLLM."""
    from omegaconf import open_dict

    from vllm_server import server_env

    cfg = compose_cfg("evaluate", ["eval.backend=vllm", f"eval.vllm.python={python}", f"budget.eval_limit={N}",
                                   "eval.vllm.max_model_len=2048", "eval.vllm.args=[--enforce-eager]",
                                   "eval.bf16=false", f"eval.batch_size={N}", *overrides])   # hf: one batch
    with open_dict(cfg):
        cfg.eval.vllm.env = server_env()
    return cfg


def run(cfg, store_root: Path, model: Path, benchmarks: dict[str, list[dict]], fewshot, backend: str,
        key: str) -> dict[str, list[str]]:
    """The evaluate stage's completions for the base model (greedy), through `backend`."""
    from omegaconf import open_dict

    from agora.stages.evaluate import completions
    from agora.store import Store

    with open_dict(cfg):
        cfg.eval.backend = backend
    gen = GenConfig(max_new_tokens=cfg.eval.max_new_tokens, temperature=0.0, top_p=cfg.eval.top_p,
                    repetition_penalty=cfg.eval.repetition_penalty, batch_size=cfg.eval.batch_size, seed=0,
                    threads=cfg.eval.threads)
    return completions(cfg, Store(store_root), label="base", model_path=str(model), model_key=f"test:{model.name}",
                       key=key, benchmarks=benchmarks, fewshot=[tuple(t) for t in fewshot], gen=gen)


def cache_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_killed_evaluation_resumes_and_agrees_with_hf(setup, tmp_path):
    py, model, rows, fewshot = setup
    (tmp_path / "rows.json").write_text(json.dumps({"rows": rows, "fewshot": fewshot}))
    script = tmp_path / "eval.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from pathlib import Path
        from test_eval_backend import run, vllm_cfg
        d = json.loads(Path({str(tmp_path / 'rows.json')!r}).read_text())
        out = run(vllm_cfg({str(py)!r}), Path({str(tmp_path)!r}), Path({str(model)!r}),
                  {{"synthetic_gsm": d["rows"]}}, d["fewshot"], "vllm", "kill")
        print("DONE", len(out["synthetic_gsm"]))
    """))
    cache = tmp_path / "requests" / "eval" / "base-kill.jsonl"
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 900
    while len(cache_lines(cache)) < 5:
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no 5 completions cached in 15 minutes"
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = cache_lines(cache)
    assert 5 <= len(before) < N, len(before)
    assert gone(model), vllm_processes(model)   # the server dies with its parent (PR_SET_PDEATHSIG)

    cfg = vllm_cfg(str(py))
    served = run(cfg, tmp_path, model, {"synthetic_gsm": rows}, fewshot, "vllm", "kill")["synthetic_gsm"]
    assert gone(model, 5), vllm_processes(model)   # stopped when the stage returned
    after = cache_lines(cache)
    assert len(after) == N and len({x["key"] for x in after}) == N   # each prompt sent once: nothing finished twice
    assert after[:len(before)] == before
    log = tmp_path / "requests" / "eval" / "base-kill.vllm.log"
    starts = log.read_text().count("agora: vLLM ready at")
    again = run(cfg, tmp_path, model, {"synthetic_gsm": rows}, fewshot, "vllm", "kill")["synthetic_gsm"]
    assert again == served and log.read_text().count("agora: vLLM ready at") == starts   # all cached: no server

    hf = run(cfg, tmp_path, model, {"synthetic_gsm": rows}, fewshot, "hf", "kill")["synthetic_gsm"]
    a, b = [extract_answer(t) for t in hf], [extract_answer(t) for t in served]
    differ = [(r["id"], x, y, h[-300:], s[-300:]) for r, x, y, h, s in zip(rows, a, b, hf, served) if x != y]
    same_text = sum(h == s for h, s in zip(hf, served))
    print(f"agreement: answers {N - len(differ)}/{N}, completions identical {same_text}/{N}, "
          f"answers found hf {sum(x is not None for x in a)}, vllm {sum(y is not None for y in b)}")
    for d in differ:
        print("disagree", json.dumps(d))
    assert sum(x is not None for x in a) >= N // 4, a   # enough real answers that agreeing is not agreeing on None
    assert len(differ) <= N * 0.05, differ


def test_the_server_is_stopped_when_the_stage_raises(setup, tmp_path):
    # The first benchmark is served; the second's prompts are longer than the server's context, so every one of
    # them is refused (HTTP 400, permanent) and the stage raises while its server is up and busy.
    py, model, rows, fewshot = setup
    others = set(vllm_children())   # engine processes of servers this test did not start
    cfg = vllm_cfg(str(py), "eval.vllm.max_model_len=512")
    long = [{**r, "question": r["question"] * 40} for r in rows[:3]]
    with pytest.raises(RuntimeError, match="3 of 3 prompts failed"):
        run(cfg, tmp_path, model, {"synthetic_gsm": rows[:4], "too_long": long}, [], "vllm", "raise")
    assert len(cache_lines(tmp_path / "requests" / "eval" / "base-raise.jsonl")) == 4   # the first was served
    assert gone(model, 5), vllm_processes(model)
    deadline = time.monotonic() + 15   # its engine processes too (the process group), once they have exited
    while set(vllm_children()) - others and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(vllm_children()) - others, vllm_children()


def test_served_perplexity_is_the_same_masked_per_example_perplexity(setup, vllm_server, tmp_path):
    """intrinsic perplexity under eval.backend=vllm: vLLM's prompt logprobs over the same rendered, masked ids give
    each row the perplexity HF's forward pass gives it (both fp32). Served by the run's one vLLM server (conftest.py),
    which Agora's evaluation launcher started on the same folder; the launcher's life cycle is the tests above."""
    from agora.metrics.intrinsic.perplexity import PerplexityMetric, perplexities, perplexities_served

    _, model, rows, _ = setup
    url, _ = vllm_server
    data = [{"instruction": r["question"], "response": r["solution"]} for r in rows[:12]]
    cfg = vllm_cfg("unused")
    kw = dict(system=cfg.domain.system_prompt, max_len=cfg.train.max_len, chat_template=cfg.student.chat_template)
    served = perplexities_served(url, "base:test", str(model), data, cache_path=tmp_path / "ppl.jsonl", **kw)
    hf = perplexities(str(model), data, **kw)
    print("perplexity hf", [round(x, 4) for x in hf], "vllm", [round(x, 4) for x in served])
    assert all(h is not None for h in hf) and len(served) == len(hf)
    assert all(abs(s - h) <= 1e-3 * h for s, h in zip(served, hf)), list(zip(hf, served))
    assert len(cache_lines(tmp_path / "ppl.jsonl")) == len(data)   # through the engine: cached, resumable
    spec = PerplexityMetric().spec(cfg)
    assert spec["backend"] == "vllm" and "backend" not in PerplexityMetric().spec(compose_cfg("evaluate"))
