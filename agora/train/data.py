"""Instruction/response rows to loss-masked SFT tensors, rendered in the student's chat format.

The paper trains with the loss on response tokens only. Each example is rendered by `agora.chat.render` (the
rendering evaluation and perplexity use too) once as a whole conversation and once as the prompt alone (with the
generation prompt, exactly what evaluation feeds to generate); the prompt's tokens get label -100, and the
response plus the end-of-turn token that closes it are learned. The prompt and the response are tokenised apart, so
the prompt ids are the evaluation prompt ids even where a BPE merge would join them across the boundary.
Whatever the template puts after the end-of-turn token (SmolLM2's trailing newline) is masked
too: the model stops generating at that token, so nothing after it is ever sampled.

Examples longer than `max_len` are dropped by default (`overlong="drop"`): a truncated response teaches
the student to stop mid-answer. `overlong="truncate"` keeps their first `max_len` tokens instead. Either
way the count is returned and logged (`train/dropped_too_long`, `train/truncated`); nothing is cut silently.

Batches are packed padding-free by default (`PackedCollator`): the examples of a micro-batch are laid end to
end in one row, with position ids restarting at 0 for each. transformers reads the restarts as example
boundaries and builds a block-diagonal causal mask (sdpa/eager) or variable-length kernels (flash attention),
so no token attends across examples and no compute goes to padding. `pack=False` pads instead, and the
Trainer groups examples of similar length.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import datasets
import torch
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from agora.chat import render, token_ids

IGNORE_INDEX = -100

# Tokens that close an assistant turn in the common chat templates. The tokenizer's own
# eos token is added at run time; these cover templates whose eos differs from the turn end.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    response: str,
    system: str | None,
    max_len: int,
    truncate: bool = False,
) -> dict[str, list[int]] | None:
    """Token ids, labels and attention mask for one example; None when it exceeds `max_len` (and `truncate` is off
    or would leave no response token to learn)."""
    return _encode(tokenizer, instruction, response, system, max_len, truncate)[0]


def _encode(tokenizer: PreTrainedTokenizerBase, instruction: str, response: str, system: str | None, max_len: int,
            truncate: bool) -> tuple[dict[str, list[int]] | None, bool]:
    """`encode_example`, and whether the example was cut to `max_len`."""
    full_text = render(tokenizer, instruction, system, response)
    prompt_text = render(tokenizer, instruction, system)   # what evaluation feeds to generate
    # The template writes its own special tokens (BOS included) into the text.
    if full_text.startswith(prompt_text):
        # The prompt and the rest are tokenised apart, as at generation: the prompt's ids are exactly the ids
        # evaluation gives the model, and the response's are the ones it would produce after them. Tokenised whole,
        # a BPE merge across the boundary would train on other prompt ids than evaluation uses (Llama-3's header
        # "\n\n" before "In" gives two tokens in SmolLM2's vocabulary, one alone).
        head = tokenizer(prompt_text, add_special_tokens=False, return_offsets_mapping=True)
        tail = tokenizer(full_text[len(prompt_text):], add_special_tokens=False, return_offsets_mapping=True)
        input_ids: list[int] = head["input_ids"] + tail["input_ids"]
        n = len(prompt_text)
        offsets: list[tuple[int, int]] = head["offset_mapping"] + [(a + n, b + n) for a, b in tail["offset_mapping"]]
        start = len(head["input_ids"])
    else:   # the template renders the prompt differently on its own: find the response in the whole
        enc = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
        input_ids, offsets = enc["input_ids"], enc["offset_mapping"]
        start = _response_start(tokenizer, input_ids, offsets, full_text, prompt_text, response)
    if len(input_ids) > max_len and not truncate:
        return None, False
    end = _response_end(tokenizer, input_ids, offsets, full_text, start, response)
    labels = [IGNORE_INDEX] * len(input_ids)
    labels[start:end] = input_ids[start:end]
    if len(input_ids) > max_len:
        if start >= max_len - 1:   # the prompt alone fills the window: nothing of the response would be learned
            return None, False
        return {"input_ids": input_ids[:max_len], "labels": labels[:max_len], "attention_mask": [1] * max_len}, True
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}, False


def _response_start(
    tokenizer: PreTrainedTokenizerBase,
    input_ids: list[int],
    offsets: list[tuple[int, int]],
    full_text: str,
    prompt_text: str,
    response: str,
) -> int:
    """Index of the first learned token when the rendered prompt is not a prefix of the whole conversation."""
    prompt_ids = token_ids(tokenizer, prompt_text)
    if input_ids[: len(prompt_ids)] == prompt_ids:
        return len(prompt_ids)
    # Find the response in characters and take the first token that reaches past its start.
    found = full_text.rfind(response.strip())
    if found < 0:
        raise ValueError(
            "cannot locate the response in the rendered chat template; the template rewrites "
            f"the assistant content. Rendered text starts: {full_text[:200]!r}"
        )
    boundary = found
    for i, (_, tok_end) in enumerate(offsets):
        if tok_end > boundary:
            return i
    return len(input_ids)


def _response_end(
    tokenizer: PreTrainedTokenizerBase,
    input_ids: list[int],
    offsets: list[tuple[int, int]],
    full_text: str,
    start: int,
    response: str,
) -> int:
    """One past the last learned token: the end-of-turn token that follows the response."""
    eot_ids = end_of_turn_ids(tokenizer)
    # Search from where the response text ends, so an end-of-turn string inside the response
    # (unlikely, but generated data is untrusted) does not cut the learned span short.
    content = response.strip()
    content_at = full_text.find(content, offsets[start][0] if start < len(offsets) else len(full_text))
    resp_end_char = content_at + len(content) if content and content_at >= 0 else 0
    for i in range(start, len(input_ids)):
        if input_ids[i] in eot_ids and offsets[i][0] >= resp_end_char:
            return i + 1
    return len(input_ids)


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids of the tokens that can close an assistant turn for this tokenizer."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return ids


@dataclass
class Encoded:
    """The encoded examples and what happened to the ones longer than `max_len`."""

    dataset: datasets.Dataset
    dropped_too_long: int
    truncated: int


def build_dataset(
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    system: str | None,
    max_len: int,
    overlong: str = "drop",
) -> Encoded:
    """Encode `rows` (keys `instruction`, `response`); overlong ones are dropped or truncated and counted."""
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"train.overlong={overlong!r}; known: drop, truncate")
    encoded: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
    dropped = truncated = 0
    for i, row in enumerate(rows):
        try:
            instruction, response = row["instruction"], row["response"]
        except KeyError as e:
            raise KeyError(f"SFT row {i} lacks {e}; rows need 'instruction' and 'response' (got {sorted(row)})") from e
        ex, cut = _encode(tokenizer, instruction, response, system, max_len, overlong == "truncate")
        if ex is None:
            dropped += 1
            continue
        truncated += cut
        for k in encoded:
            encoded[k].append(ex[k])
    return Encoded(datasets.Dataset.from_dict(encoded), dropped, truncated)


def split_validation(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation indices: a seeded `fraction` of the examples is held out, so the validation loss is
    measured on examples the student never trained on. From 10 examples on at least one is held out; below that
    only what the fraction rounds to (a 2-example smoke cell keeps both for training)."""
    k = round(n * fraction) if fraction > 0 else 0
    if fraction > 0 and n >= 10:
        k = max(k, 1)
    k = min(k, n - 1)
    if k <= 0:
        return list(range(n)), []
    order = random.Random(seed).sample(range(n), n)
    return sorted(order[k:]), sorted(order[:k])


@dataclass
class PackedCollator:
    """A micro-batch as one row: examples end to end, position ids restarting per example, no padding at all.

    The first label of every example is -100 so the last token of one example is never trained to predict the
    first token of the next. Without an attention mask, transformers derives the example boundaries from the
    position ids (block-diagonal causal attention).
    """

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for f in features:
            if "position_ids" in f:   # a bin from `pack_bins`: already laid end to end, boundaries masked
                ids += f["input_ids"]
                labels += f["labels"]
                pos += f["position_ids"]
                continue
            n = len(f["input_ids"])
            ids += f["input_ids"]
            labels += [IGNORE_INDEX] + list(f["labels"][1:])
            pos += range(n)
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos])}


def pack_bins(dataset: datasets.Dataset, bin_tokens: int, seed: int) -> datasets.Dataset:
    """Examples laid end to end in bins of at most `bin_tokens` tokens, so that a micro-batch of B rows carries
    about B x bin_tokens tokens whatever the examples' lengths.

    This is how the paper's trainer (llama-recipes, `batching_strategy=packing`, `context_length=4096`) fixes the
    tokens per optimizer step: 4 bins x 8 accumulation steps x 4 GPUs x 4,096 tokens. Two differences, both so
    that no example learns from another: an example is never split across bins (llama-recipes cuts the
    concatenated stream every 4,096 tokens), and attention stays inside each example (position ids restart, and
    each example's first label is -100), where llama-recipes lets a packed row attend across examples. The order
    is a seeded shuffle, then next-fit, so the same seed gives the same bins.
    """
    n = len(dataset)
    order = random.Random(seed).sample(range(n), n)
    bins: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    cur: dict[str, list[int]] = {k: [] for k in bins}
    for i in order:
        ex = dataset[i]
        size = len(ex["input_ids"])
        if cur["input_ids"] and len(cur["input_ids"]) + size > bin_tokens:
            for k in bins:
                bins[k].append(cur[k])
            cur = {k: [] for k in bins}
        cur["input_ids"] += ex["input_ids"]
        cur["labels"] += [IGNORE_INDEX] + list(ex["labels"][1:])
        cur["position_ids"] += range(size)
    if cur["input_ids"]:
        for k in bins:
            bins[k].append(cur[k])
    return datasets.Dataset.from_dict(bins)


def make_collator(tokenizer: PreTrainedTokenizerBase, pack: bool = True):
    """Padding-free packing (the default), or right padding with the pad token and -100 labels."""
    if pack:
        return PackedCollator()
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of attention and loss, so which id fills them is moot.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
