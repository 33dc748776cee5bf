"""`reward` (`intrinsic_reward=skywork` as in the paper; off by default): a sequence-classification reward model's
score of each (instruction, response).
"""
from __future__ import annotations

import time

from omegaconf import DictConfig

from agora import AgoraError
from agora.metrics.intrinsic.base import Measured, torch_device, mean, one_line
from agora.store import Store

# ---------------------------------------------------------------- reward model (optional)

def reward_scores(model_path: str, rows: list[dict], *, batch_size: int = 4, max_length: int = 4096,
                  trust_remote_code: bool = False, dtype: str = "float32",
                  revision: str | None = None) -> list[float | None]:
    """The scalar a sequence-classification reward model (Skywork-Reward-Llama-3.1-8B in the paper) gives each
    (instruction, response) conversation, rendered with the reward model's own chat template; None when too long.

    Rows are batched only when the tokenizer has a pad token of its own: where pad is eos, the model could not
    tell padding from a closing eos when it picks the last token to score, so such rows go one at a time.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if dtype not in ("float32", "bfloat16", "float16"):
        raise AgoraError(f"intrinsic.reward.dtype={dtype!r} is not one of float32, bfloat16, float16")
    try:
        tok = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code, revision=revision)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, trust_remote_code=trust_remote_code, revision=revision, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        raise AgoraError(f"cannot load the reward model {model_path} (intrinsic.reward.model_id): {one_line(e)}") from e
    if not tok.chat_template:
        raise AgoraError(f"the reward model's tokenizer at {model_path} has no chat_template; it scores chats")
    if model.config.num_labels != 1:
        raise AgoraError(f"{model_path} has {model.config.num_labels} output labels; a reward model has 1")
    device = torch_device()
    model.to(device).eval()
    own_pad = tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    if own_pad:
        model.config.pad_token_id = tok.pad_token_id
    else:
        batch_size = 1
    ids = []
    for r in rows:
        text = tok.apply_chat_template([{"role": "user", "content": r["instruction"]},
                                        {"role": "assistant", "content": r["response"]}], tokenize=False)
        x = tok(text, add_special_tokens=False)["input_ids"]
        ids.append(x if len(x) <= max_length else None)
    out: list[float | None] = [None] * len(rows)
    order = sorted((i for i, x in enumerate(ids) if x), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for s in tqdm(range(0, len(order), batch_size), desc="intrinsic reward", unit="batch", delay=0.5):
            idx = order[s:s + batch_size]
            width = max(len(ids[i]) for i in idx)
            x = torch.full((len(idx), width), tok.pad_token_id if own_pad else 0, dtype=torch.long)
            m = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                x[b, :len(ids[i])] = torch.tensor(ids[i])
                m[b, :len(ids[i])] = 1
            logits = model(input_ids=x.to(device), attention_mask=m.to(device)).logits
            for b, i in enumerate(idx):
                out[i] = float(logits[b, 0].float())
    return out


class RewardMetric:
    name = "reward"

    def spec(self, cfg: DictConfig) -> dict | None:
        r = cfg.intrinsic.reward
        return ({"model_id": r.model_id, "revision": r.revision, "dtype": r.dtype, "max_length": r.max_length}
                if r.enabled else None)

    def check(self, cfg: DictConfig) -> None:
        r = cfg.intrinsic.reward
        if r.enabled and not r.model_id:
            raise AgoraError("intrinsic.reward.enabled=true needs intrinsic.reward.model_id (a hub id or local "
                             "folder of a sequence-classification reward model, e.g. "
                             "Skywork/Skywork-Reward-Llama-3.1-8B)")

    def measure(self, cfg: DictConfig, store: Store, rows: list[dict]) -> Measured:
        r = cfg.intrinsic.reward
        t = time.perf_counter()
        rewards = reward_scores(str(r.model_id), rows, batch_size=r.batch_size, max_length=r.max_length,
                                trust_remote_code=r.trust_remote_code, dtype=r.dtype, revision=r.revision)
        return Measured({"reward": mean(rewards)}, {"reward": rewards}, seconds=time.perf_counter() - t)


METRIC = RewardMetric()
