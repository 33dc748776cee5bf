"""What the machine can do natively, read once, so that `auto` settings resolve the same way everywhere.

`train.bf16=auto` and `eval.bf16=auto` are the reason: bf16 pays on a CPU with native bf16 instructions (Intel AMX,
AVX512-BF16). SmolLM2-135M trained at about 260 tokens/s against about 150 in fp32 on an AMX Xeon (same loss to 4
decimals), and at 169 against about 95 on an AMD EPYC with AVX512-BF16; its greedy evaluation of 24 problems ran
1.6x faster there with bf16 weights. A CPU without them emulates bf16 and loses. The resolved value, not the word
`auto`, goes into the training and evaluation keys: a student trained, or a model evaluated, in bf16 is a different
product from one in fp32.
"""
from __future__ import annotations

from functools import cache

from agora import AgoraError


@cache
def cpu_flags() -> frozenset[str]:
    """The x86 feature flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """bf16 runs at full speed here: a CUDA device that supports it, or a CPU with AMX-BF16 or AVX512-BF16."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def resolve_bf16(setting: bool | str, name: str = "train.bf16", deepspeed: bool = False) -> bool:
    """`train.bf16` or `eval.bf16` (`name`): true, false, or "auto" (on where bf16 is native, `native_bf16`).

    `auto` stays fp32 for DeepSpeed training on a CPU: with DeepSpeed's bf16 (which runs the model in bf16 rather
    than autocasting fp32 weights), 2 ranks on an AVX512-BF16 EPYC were 0.4 off the single process's loss at the
    first step, where fp32 matches it to 1e-5; the cause was not pinned down, so `auto` does not go there."""
    if setting == "auto":
        import torch

        return native_bf16() and not (deepspeed and not torch.cuda.is_available())
    if isinstance(setting, bool):
        return setting
    raise AgoraError(f"{name}={setting!r}; use auto, true or false")
