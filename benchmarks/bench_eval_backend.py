"""The same evaluation through `eval.backend=hf` and `eval.backend=vllm`: wall time, tokens/s, and the ratio.

    python benchmarks/bench_eval_backend.py --vllm-python ~/.cache/agora/vllm-venv/bin/python \
        --models base=PATH reference=PATH student=PATH --problems 64 --max-new-tokens 160

Each model (a plain HF folder: the store's `models/`, `references/` and `students/` hold them) answers the same
synthetic GSM problems, greedily, once per backend, through `agora.stages.evaluate.completions`, the stage's own
code. vLLM's start-up (one server per model, import and warm-up included) is timed apart from its generation, since
it is paid once per model whatever the number of problems. Tokens are the student's tokenizer's count of each
completion. Without --models, the smoke student (the packaged SmolLM2) stands in for all three.

On a GPU: the same command with `--vllm-python` pointing at a Python that has CUDA vLLM (or omitted when this one
has it), `--problems 1319 --max-new-tokens 1024` for GSM8K at the paper's length.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from agora.infer import GenConfig


def compose(overrides: list[str]):
    from hydra import compose as hcompose, initialize_config_dir

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return hcompose("evaluate", overrides=overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=[], help="LABEL=FOLDER (default: the smoke student as all three)")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--vllm-python", default=None, help="the interpreter that has vllm (default: this one)")
    ap.add_argument("--kv-cache-gib", default="2", help="VLLM_CPU_KVCACHE_SPACE for vLLM's CPU build")
    ap.add_argument("--vllm-args", nargs="*", default=[], help="more api_server flags, e.g. --vllm-args=--enforce-eager")
    ap.add_argument("--bf16", default="auto", choices=["auto", "true", "false"], help="eval.bf16, for both backends")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    from omegaconf import open_dict
    from transformers import AutoTokenizer

    from agora.hardware import resolve_bf16
    from agora.stages import split_rows
    from agora.stages.evaluate import completions
    from agora.store import Store

    cfg = compose(["eval.backend=hf", f"budget.eval_limit={args.problems}", f"eval.max_new_tokens={args.max_new_tokens}",
                   f"eval.bf16={args.bf16}"]
                  + ([f"eval.vllm.python={args.vllm_python}"] if args.vllm_python else []))
    with open_dict(cfg):
        cfg.eval.vllm.env = {"VLLM_CPU_KVCACHE_SPACE": args.kv_cache_gib}
        cfg.eval.vllm.args = list(args.vllm_args)
    rows = split_rows(cfg, ["synthetic_gsm"], "test", args.problems)
    models = dict(m.split("=", 1) for m in args.models)
    if not models:
        from agora.train.student import SMOLLM2_FILENAME, SMOLLM2_NAME, SMOLLM2_PACKAGE, materialize_student

        smol = str(materialize_student("gguf_package", SMOLLM2_NAME, Path(tempfile.gettempdir()) / "agora-bench-models",
                                       package=SMOLLM2_PACKAGE, filename=SMOLLM2_FILENAME))
        models = {"base": smol, "reference": smol, "student": smol}
    gen = GenConfig(max_new_tokens=args.max_new_tokens, temperature=0.0, top_p=cfg.eval.top_p,
                    repetition_penalty=cfg.eval.repetition_penalty, batch_size=cfg.eval.batch_size, seed=0,
                    threads=cfg.eval.threads)
    out: dict = {"problems": len(rows), "max_new_tokens": args.max_new_tokens, "models": models,
                 "bf16": bool(resolve_bf16(cfg.eval.bf16, "eval.bf16")), "vllm_args": list(args.vllm_args)}
    print(f"{len(rows)} problems, {args.max_new_tokens} new tokens, greedy, bf16={out['bf16']}, "
          f"vllm args {args.vllm_args}", flush=True)
    for backend in ("hf", "vllm"):
        with open_dict(cfg):
            cfg.eval.backend = backend
        totals = {"wall_s": 0.0, "tokens": 0, "startup_s": 0.0}
        for label, folder in models.items():
            tok = AutoTokenizer.from_pretrained(folder)
            with tempfile.TemporaryDirectory() as store:
                t0 = time.perf_counter()
                texts = completions(cfg, Store(Path(store)), label=label, model_path=folder, model_key=f"bench:{label}",
                                    key=f"{backend}-{label}", benchmarks={"synthetic_gsm": rows}, fewshot=[],
                                    gen=gen)["synthetic_gsm"]
                wall = time.perf_counter() - t0
                startup = 0.0
                if backend == "vllm":   # the launcher logs how long the server took to answer
                    log = next((Path(store) / "requests" / "eval").glob("*.vllm.log")).read_text()
                    startup = float(re.findall(r"vLLM ready at \S+ in (\d+) s", log)[-1])
            n = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
            totals["wall_s"] += wall
            totals["tokens"] += n
            totals["startup_s"] += startup
            print(f"{backend:5s} {label:9s} {wall:7.1f} s (start-up {startup:5.1f} s) {n:6d} tokens "
                  f"{n / max(wall - startup, 1e-9):7.1f} tokens/s after start-up", flush=True)
        gen_s = totals["wall_s"] - totals["startup_s"]
        totals["tokens_per_s"] = totals["tokens"] / max(gen_s, 1e-9)
        out[backend] = totals
    hf, vl = out["hf"], out["vllm"]
    print(f"hf   : {hf['wall_s']:.1f} s, {hf['tokens_per_s']:.1f} tokens/s")
    print(f"vllm : {vl['wall_s']:.1f} s in all, of which start-up {vl['startup_s']:.1f} s; "
          f"{vl['tokens_per_s']:.1f} tokens/s after start-up")
    print(f"ratio vllm/hf, tokens/s after start-up: {vl['tokens_per_s'] / hf['tokens_per_s']:.2f}x; "
          f"wall time with start-up hf/vllm: {hf['wall_s'] / vl['wall_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
