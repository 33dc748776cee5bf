"""Instruction/response rows to loss-masked SFT tensors, rendered with the student's chat template.

The paper trains with the loss on response tokens only. Each example is rendered once as a
whole conversation and once as the prompt alone (with the generation prompt); the prompt's
tokens get label -100, and the response plus the end-of-turn token that closes it are learned.
Whatever the template puts after the end-of-turn token (SmolLM2's trailing newline) is masked
too: the model stops generating at that token, so nothing after it is ever sampled.

Examples longer than `max_len` are dropped, not truncated: a truncated response teaches the
student to stop mid-answer. The caller logs how many were dropped.
"""

from __future__ import annotations

from typing import Any

import datasets
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

IGNORE_INDEX = -100

# Tokens that close an assistant turn in the common chat templates. The tokenizer's own
# eos token is added at run time; these cover templates whose eos differs from the turn end.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")


def messages_for(instruction: str, response: str | None, system: str | None) -> list[dict[str, str]]:
    """The chat messages for one example; `response=None` gives the prompt only."""
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": instruction})
    if response is not None:
        msgs.append({"role": "assistant", "content": response})
    return msgs


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    response: str,
    system: str | None,
    max_len: int,
) -> dict[str, list[int]] | None:
    """Token ids, labels and attention mask for one example, or None when it exceeds `max_len`."""
    if not tokenizer.chat_template:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat_template; SFT renders examples with it"
        )
    full_text = tokenizer.apply_chat_template(messages_for(instruction, response, system), tokenize=False)
    prompt_text = tokenizer.apply_chat_template(
        messages_for(instruction, None, system), tokenize=False, add_generation_prompt=True
    )
    # The template writes its own special tokens (BOS included) into the text.
    enc = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids: list[int] = enc["input_ids"]
    if len(input_ids) > max_len:
        return None
    offsets: list[tuple[int, int]] = enc["offset_mapping"]

    start = _response_start(tokenizer, input_ids, offsets, full_text, prompt_text, response)
    end = _response_end(tokenizer, input_ids, offsets, full_text, start, response)
    labels = [IGNORE_INDEX] * len(input_ids)
    labels[start:end] = input_ids[start:end]
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def _response_start(
    tokenizer: PreTrainedTokenizerBase,
    input_ids: list[int],
    offsets: list[tuple[int, int]],
    full_text: str,
    prompt_text: str,
    response: str,
) -> int:
    """Index of the first learned token: the first one after the rendered prompt."""
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    if input_ids[: len(prompt_ids)] == prompt_ids:
        return len(prompt_ids)
    # The tokeniser merged across the boundary, or the template renders the prompt differently
    # on its own: find the boundary in characters and take the first token that reaches past it.
    if full_text.startswith(prompt_text):
        boundary = len(prompt_text)
    else:
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


def build_dataset(
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    system: str | None,
    max_len: int,
) -> tuple[datasets.Dataset, int]:
    """Encode `rows` (keys `instruction`, `response`); return the data set and how many were too long."""
    encoded: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
    dropped = 0
    for i, row in enumerate(rows):
        try:
            instruction, response = row["instruction"], row["response"]
        except KeyError as e:
            raise KeyError(f"SFT row {i} lacks {e}; rows need 'instruction' and 'response' (got {sorted(row)})") from e
        ex = encode_example(tokenizer, instruction, response, system, max_len)
        if ex is None:
            dropped += 1
            continue
        for k in encoded:
            encoded[k].append(ex[k])
    return datasets.Dataset.from_dict(encoded), dropped


def make_collator(tokenizer: PreTrainedTokenizerBase) -> DataCollatorForSeq2Seq:
    """Right-pads input_ids and attention_mask with the pad token / 0, and labels with -100."""
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of attention and loss, so which id fills them is moot.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
