"""The student's chat format, in one place: the one rendering SFT, evaluation and perplexity all share.

The paper fine-tunes the base Llama-3.1-8B into the Llama-3 chat format with the system message "You are a
helpful AI assistant." (the paper, "Student training"), and a score is only comparable when the base, the
reference and the student are prompted in the format the student learned. So every path takes its text from
`render` on a tokenizer that went through `apply_format`:

- SFT (`agora.train.data.encode_example`): the whole conversation; the prompt part is masked out of the loss;
- evaluation (`agora.infer.build_prompt`): the prompt alone, ending in the assistant header, for the
  base (with its few-shot turns before the question), the reference and the student;
- perplexity (`agora.metrics.intrinsic.perplexities`): the same ids as SFT, scored on the learned tokens.

`student.chat_template` picks the format. A name (`llama3`, `gemma3`) wins over any template the tokenizer ships
with: the paper's base Llama-3.1-8B is trained into the plain Llama-3 format, and the reference checkpoint
(Llama-3.1-8B-Instruct, whose own template adds a "Cutting Knowledge Date" header to the system message) is
prompted in that same format. `null` keeps each tokenizer's own template (the smoke student SmolLM2-Instruct).
The rendered text carries its own special tokens (BOS included), so it is always tokenised with
`add_special_tokens=False`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agora import AgoraError

# Llama-3's chat format: each turn is `<|start_header_id|>ROLE<|end_header_id|>\n\n` + content + `<|eot_id|>`, the
# whole after the tokenizer's BOS (<|begin_of_text|>); the prompt ends in an open assistant header. No default
# system message and no date header (those are the 3.1-Instruct template's additions).
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Gemma-3's published chat template, text-only. The packaged Gemma is the *base* model and its GGUF carries no
# template; like the paper's base student, it is fine-tuned into its family's format. Gemma has no system role:
# the system message opens the first user turn.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

CHAT_TEMPLATES = {"llama3": LLAMA3_CHAT_TEMPLATE, "gemma3": GEMMA3_CHAT_TEMPLATE}

# The markers each named template writes. They must be single tokens of the tokenizer the template is put on:
# spelled out in pieces, the end-of-turn marker is no token generation can stop on, and the student would learn
# the markup as text.
TEMPLATE_TOKENS = {
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "gemma3": ("<start_of_turn>", "<end_of_turn>"),
}


def apply_format(tokenizer: Any, chat_template: str | None, where: str | Path = "") -> Any:
    """Put the named template on `tokenizer` (it replaces the tokenizer's own); `None` keeps the tokenizer's own.

    Returns the tokenizer. Raises AgoraError for an unknown name, for a tokenizer that lacks the named template's
    markers as single tokens, and for `None` on a tokenizer without a template.
    """
    where = where or getattr(tokenizer, "name_or_path", "") or "?"
    if chat_template is None:
        if not tokenizer.chat_template:
            raise AgoraError(f"the tokenizer at {where} has no chat template; set student.chat_template to one of "
                             f"{sorted(CHAT_TEMPLATES)} (the format SFT, evaluation and perplexity share)")
        return tokenizer
    if chat_template not in CHAT_TEMPLATES:
        raise AgoraError(f"student.chat_template={chat_template!r} is unknown; known: {sorted(CHAT_TEMPLATES)} "
                         f"or null (the tokenizer's own)")
    vocab = tokenizer.get_vocab()
    missing = [t for t in TEMPLATE_TOKENS[chat_template] if t not in vocab]
    if missing:
        raise AgoraError(f"student.chat_template={chat_template} needs {missing} as single tokens, which the "
                         f"tokenizer at {where} lacks; use its own template (student.chat_template=null)")
    tokenizer.chat_template = CHAT_TEMPLATES[chat_template]
    return tokenizer


def load_tokenizer(path: str | Path, chat_template: str | None, **kwargs: Any) -> Any:
    """The tokenizer of the model at `path` (a folder or hub id; `kwargs` go to `from_pretrained`), in the format."""
    from transformers import AutoTokenizer

    return apply_format(AutoTokenizer.from_pretrained(path, **kwargs), chat_template, path)


def messages(instruction: str, system: str | None, response: str | None = None,
             fewshot: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """The chat: the system message (when non-empty), each few-shot pair as a user and an assistant turn, the
    instruction, and the response when given."""
    msgs = [{"role": "system", "content": system}] if system else []
    for shot_question, shot_answer in fewshot:
        msgs += [{"role": "user", "content": shot_question}, {"role": "assistant", "content": shot_answer}]
    msgs.append({"role": "user", "content": instruction})
    if response is not None:
        msgs.append({"role": "assistant", "content": response})
    return msgs


def render(tokenizer: Any, instruction: str, system: str | None, response: str | None = None,
           fewshot: Sequence[tuple[str, str]] = ()) -> str:
    """One example as text: with `response=None`, the prompt that ends in the open assistant turn (what a model is
    asked to continue); with a response, the whole conversation (what SFT learns from and perplexity scores)."""
    if not tokenizer.chat_template:
        raise AgoraError(f"the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; load it "
                         f"with agora.chat.load_tokenizer (student.chat_template)")
    msgs = messages(instruction, system, response, fewshot)
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=response is None)


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """The ids of rendered text; the template already wrote the special tokens, BOS included."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]
