"""The originals' own files, read from the user's checkout and checked against the pinned commits' hashes.

Where the exact text of an original changes a score (AgoraBench's meta-prompts and generator system message, the
Arena-Hard judge's prompt), Agora does not ship that text: it reads the file from a checkout the user made of the
original repository, at the commit named here, and refuses any file whose sha256 differs from the pinned one, so a
run that says "the original's prompts" runs exactly them. The hashes go into the products' keys.

A checkout is named in the config (`originals.data_agora`, `originals.arena_hard_auto`: a folder, or null). How to
make one is in `Original.how`, which every error repeats.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from agora import AgoraError


@dataclass(frozen=True)
class Original:
    """One pinned repository: where it lives, the commit, the config key that points at a checkout, and the sha256
    of every file Agora reads from it (paths relative to the repository root)."""
    repo: str
    commit: str
    key: str
    files: dict[str, str]

    @property
    def how(self) -> str:
        return (f"git clone https://github.com/{self.repo} && git -C {self.repo.split('/')[1]} checkout "
                f"{self.commit[:7]}, then {self.key}=/path/to/{self.repo.split('/')[1]}")


DATA_AGORA = Original(
    repo="neulab/data-agora", commit="d7e66e12b03616caa42d818d5c2a387c127014ab", key="originals.data_agora",
    files={
        "agora_scripts/prompts/instance_generation_code_prompt.txt":
            "8674cdf168ed60641891481ee292f1b61ebc3e09369420524ea4e67b8446a02c",
        "agora_scripts/prompts/instance_generation_code_prompt_json_formatted.txt":
            "9d98c5db1539151826e256a1723e52bc1f0530efa9a4f6e951e9f879d9ae97d4",
        "agora_scripts/prompts/instance_generation_general_prompt.txt":
            "0843bb2cc109db90b363918c581c8b48d954a84c41642d269adee6bf5a6b5dd7",
        "agora_scripts/prompts/instance_generation_general_prompt_json_formatted.txt":
            "6c8ca31c13aafb002e070eba8c83b8cb7392183371ddf5e0b635eb967b624423",
        "agora_scripts/prompts/instance_generation_math_prompt.txt":
            "ab625648e3773de42e2cc69660b64c01269302f1ef23c9fd52a46aa306f924cf",
        "agora_scripts/prompts/instance_generation_math_prompt_json_formatted.txt":
            "84d37abef5044d66fe1cbd4ec3176336f40ea5ddd0bc42192d4b79901d83981c",
        "agora_scripts/prompts/quality_enhancement_code_prompt.txt":
            "316e91a94bf7caeca25036d5ee0bb7f19b880ac4f84ee948d5220954a654d179",
        "agora_scripts/prompts/quality_enhancement_general_prompt.txt":
            "40ed23fb1254e05e606255613dfd5b78f249a8b3954d83baeb431d4bd5beb0c1",
        "agora_scripts/prompts/quality_enhancement_math_prompt.txt":
            "a2d7bcb13235ffb258b28488b4130db79386bba5d1eba65b141005795721e5ce",
        "agora_scripts/prompts/response_generation_code_prompt.txt":
            "39db87fb99598b922e36cb5fd26e7df52a764e5f4ddbd4e1a478fd3119a5787a",
        "agora_scripts/prompts/response_generation_general_prompt.txt":
            "cc1268dd380cb77e7556877c3637a38bae131ccc03c04aef30dba097f2613559",
        "agora_scripts/prompts/response_generation_math_prompt.txt":
            "11c30aa2ae4215638b16c95607be7aa0f168822abdea5f0ad0050e22ffef29e0",
        "agora_scripts/run.py": "7d2ae336aac5a8df6bd9350c55191ee31dc8505ed1b0762f0c8f2fc53817e4e1",
        "libs/data-agora/data_agora/agora.py": "77c456a5a454910d719a6abdb2f24668674cecf5f5afab9ecdb283772770a697",
        "libs/data-agora/data_agora/core/validators.py":
            "9c98aecc3e37fb97eb767cd9bbd4f8f043d637b616bb3f3c005f5741d075d8f1",
    })

# v0.1's judge config: the same blob from b00effb (2024-07-31) through 3071ef9 (2025-03-19), the last commit before
# the v2.0 reformat.
ARENA_HARD_AUTO = Original(
    repo="lmarena/arena-hard-auto", commit="b00effbe44985651be892b01d765587adc13c888", key="originals.arena_hard_auto",
    files={"config/judge_config.yaml": "6e001736bacacdb1591ffca7eec953a7089f8f5604872d1ca4f9a6f9de1ee451"})

# Agora's domain package -> the original's domain name in its file names (`--domain general|math|code`).
DOMAIN_NAMES = {"math": "math", "code": "code", "instruction_following": "general"}


def read(original: Original, root: str | Path | None, path: str) -> tuple[str, str]:
    """`(text, sha256)` of `path` in the checkout at `root`, after checking its hash against the pinned commit's.
    Every failure is one line that says how to get the right checkout."""
    if path not in original.files:
        raise AgoraError(f"{path} is not a file Agora reads from {original.repo}; known: {sorted(original.files)}")
    if root is None:
        raise AgoraError(f"{original.key} is not set: this cell reads {path} from a checkout of {original.repo} at "
                         f"{original.commit[:7]} ({original.how})")
    file = Path(root).expanduser() / path
    if not file.is_file():
        raise AgoraError(f"{original.key}={root}: no {path} there; it must be a checkout of {original.repo} at "
                         f"{original.commit[:7]} ({original.how})")
    raw = file.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if sha != original.files[path]:
        raise AgoraError(f"{original.key}={root}: {path} has sha256 {sha[:12]}…, not {original.files[path][:12]}… "
                         f"as at {original.repo}@{original.commit[:7]} ({original.how})")
    return raw.decode("utf-8"), sha


def prompt_path(domain: str, mode: str, style: str = "free_form") -> str:
    """The original's prompt file for a cell: `agora_scripts/prompts/<mode>_<domain>_prompt[_json_formatted].txt`,
    as `agora_scripts/run.py`'s `prompt_dict` names them (the JSON files exist for instance generation only)."""
    if domain not in DOMAIN_NAMES:
        raise AgoraError(f"domain {domain!r} has no meta-prompt in {DATA_AGORA.repo}; its domains: "
                         f"{sorted(DOMAIN_NAMES)}")
    suffix = "_json_formatted" if style == "json" else ""
    path = f"agora_scripts/prompts/{mode}_{DOMAIN_NAMES[domain]}_prompt{suffix}.txt"
    if path not in DATA_AGORA.files:
        raise AgoraError(f"{DATA_AGORA.repo} has no {style} meta-prompt for {mode} × {domain} ({path})")
    return path


def system_message(root: str | Path | None) -> tuple[str, str]:
    """`(text, sha256 of the text)`: the generator's system message, the default of `AgoraConfig.system_message` in
    `libs/data-agora/data_agora/agora.py` (the value `agora_scripts/run.py` passes again), read from the checkout."""
    source, _ = read(DATA_AGORA, root, "libs/data-agora/data_agora/agora.py")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "AgoraConfig":
            for stmt in node.body:
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and stmt.target.id == "system_message" and isinstance(stmt.value, ast.Constant)):
                    text = stmt.value.value
                    return text, hashlib.sha256(text.encode()).hexdigest()
    raise AgoraError(f"{DATA_AGORA.key}={root}: AgoraConfig.system_message not found in agora.py")   # hash-checked


def draws(root: str | Path | None, domain: str) -> tuple[list[str], list[str]]:
    """`(themes, opening words)` that the original's instance generation draws for `domain`: `themes[<domain>]` and,
    in its general domain, `general_triggers` of `agora_scripts/run.py`, read from the checkout as the file defines
    them (lists as written, so a repeated entry is drawn twice as often and two strings its missing comma joins are
    one entry: 123 opening words, 121 distinct)."""
    if domain not in DOMAIN_NAMES:
        raise AgoraError(f"domain {domain!r} has no themes in {DATA_AGORA.repo}; its domains: {sorted(DOMAIN_NAMES)}")
    source, _ = read(DATA_AGORA, root, "agora_scripts/run.py")
    lists: dict[str, list[str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.List):
            lists[node.targets[0].id] = [ast.literal_eval(e) for e in node.value.elts]
    name = DOMAIN_NAMES[domain]
    return lists[f"{name}_themes"], (lists["general_triggers"] if name == "general" else [])
