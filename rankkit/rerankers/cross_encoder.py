"""Cross-encoder reranking: score every (query, document) pair with one transformer.

``CrossEncoder`` loads any Hugging Face sequence-classification cross-encoder
(HF id, folder, sentence-transformers CrossEncoder folder) or a rankkit adapter
folder (base model + peft adapter + trained head), and scores all candidate
pairs of a run at once: unique texts are tokenised once to get exact token
lengths, pairs are sorted by length so each batch is padded only to its own
longest pair, and the forward passes run under ``torch.inference_mode()``.
The document is truncated to fit the window, never the query (counted, with
one warning per call).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingResourceError, RankkitError
from ..pipeline import Reranker
from ..types import Corpus

log = logging.getLogger(__name__)

DEFAULT_MODEL = "minilm-scifact"


def _hf_folder(path: Path) -> Path:
    """The folder holding the HF model inside a sentence-transformers folder (or ``path`` itself)."""
    if (path / "config.json").exists():
        return path
    modules = path / "modules.json"
    if modules.exists():
        for m in json.loads(modules.read_text()):
            sub = path / m.get("path", "")
            if (sub / "config.json").exists():
                return sub
    return path


def _text_source(corpus: Any) -> Corpus | Callable[[str], str] | None:
    if corpus is None or isinstance(corpus, Corpus) or callable(corpus) and not isinstance(corpus, Mapping):
        return corpus
    if isinstance(corpus, Mapping) or hasattr(corpus, "column_names"):
        return Corpus.coerce(corpus)
    raise ConfigError(f"corpus= takes a Corpus, a mapping or a function, not {type(corpus).__name__}")


def load_cross_encoder(model: str | os.PathLike, num_labels: int | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Load a cross-encoder (model, tokenizer, manifest) without ever returning a random head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..models import missing_model_error, resolve_model
    from ..training.peft import _quiet_transformers, load_reranker, read_manifest

    ref = resolve_model(model)
    if ref.path is not None and ref.path.is_dir() and read_manifest(ref.path) is not None:
        return load_reranker(ref.path, merged=True)
    _quiet_transformers()
    where = _hf_folder(ref.path) if ref.path is not None else ref.location
    kwargs = {"num_labels": num_labels} if num_labels else {}
    try:
        net, info = AutoModelForSequenceClassification.from_pretrained(str(where), output_loading_info=True, **kwargs)
        tok = AutoTokenizer.from_pretrained(str(where))
    except (OSError, ValueError) as e:
        raise missing_model_error(str(model), e) from e
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.endswith("position_ids"))
    if missing:
        raise RankkitError(
            f"model {str(model)!r} has no trained classification head (missing weights: "
            f"{', '.join(missing[:4])}): it is not a cross-encoder, and its scores would be random. "
            f"Train one with `rankkit train reranker` or pass a cross-encoder")
    net.eval()
    return net, tok, {}


class CrossEncoder(Reranker):
    """Reranks candidates with a cross-encoder: ``bm25 % 100 >> rk.CrossEncoder(m, corpus=c)``.

    ``dtype`` ("float32", "bfloat16", "float16"): on a GPU the weights are cast;
    on CPU low precision runs through ``torch.autocast`` (fast bf16 kernels,
    fp32 layer norms). ``label`` picks the relevant class of a multi-logit head
    (default: the only logit, or class 1 of a two-class head).
    """

    name = "cross-encoder"

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, corpus: Any = None,
                 max_length: int | None = None, batch_size: int = 32, dtype: str | None = None,
                 device: str | None = None, label: int | None = None, show_progress: bool = True):
        import torch

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = str(model)
        self.corpus = _text_source(corpus)
        self.model, self.tokenizer, self.manifest = load_cross_encoder(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _dtype(dtype)
        self.model.to(self.device)
        if self.dtype is not None and self.device.type != "cpu":
            self.model.to(self.dtype)
        limit = min(int(getattr(self.model.config, "max_position_embeddings", 512) or 512), 512)
        if getattr(self.model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2
        self.max_length = int(max_length or self.manifest.get("max_length") or limit)
        if self.max_length > limit:
            raise ConfigError(f"max_length {self.max_length} exceeds the model's window of {limit} tokens")
        self.batch_size = int(batch_size)
        self.label = label
        self.show_progress = show_progress
        self.num_special = self.tokenizer.num_special_tokens_to_add(pair=True)
        self.stats = {"pairs": 0, "truncated": 0, "empty": 0, "query_truncated": 0}

    # ------------------------------------------------------------------ Stage API
    def score_pairs(self, query_texts: list[str], qidx: np.ndarray, docids: np.ndarray) -> np.ndarray:
        if self.corpus is None:
            raise ConfigError("CrossEncoder needs the document texts: pass corpus= (a Corpus, "
                              "a {docid: text} mapping or a function docid -> text)")
        get = self.corpus.__getitem__ if isinstance(self.corpus, Corpus) else self.corpus
        try:
            docs = [get(d) for d in docids.tolist()]
        except KeyError as e:
            raise RankkitError(f"CrossEncoder: candidate {e} is not in the corpus it was given") from None
        qs = [query_texts[i] for i in np.asarray(qidx).tolist()]
        return self.predict(qs, docs)

    def predict(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        """Score aligned (query, document) texts; returns float32 raw relevance logits."""
        import torch
        from tqdm.auto import tqdm

        from ..training.trainer import relevance_logit

        if len(queries) != len(docs):
            raise RankkitError(f"{len(queries)} queries but {len(docs)} documents")
        n = len(docs)
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        q_len = self._token_lengths(queries)
        d_len = self._token_lengths(docs)
        total = q_len + d_len + self.num_special
        truncated = int((total > self.max_length).sum())
        empty = int(sum(1 for d in docs if not d.strip()))
        long_q = q_len + self.num_special >= self.max_length - 1
        self.stats["pairs"] += n
        self.stats["truncated"] += truncated
        self.stats["empty"] += empty
        self.stats["query_truncated"] += int(long_q.sum())
        if truncated:
            log.warning("%d of %d pairs exceed max_length=%d tokens: documents truncated", truncated, n,
                        self.max_length)
        if empty:
            log.warning("%d of %d candidate documents are empty; they are scored as empty text", empty, n)
        if long_q.any():
            log.warning("%d queries alone fill the %d-token window; they are truncated too",
                        int(long_q.sum()), self.max_length)
        order = np.argsort(-np.minimum(total, self.max_length), kind="stable")
        autocast = (torch.autocast("cpu", dtype=self.dtype)
                    if self.dtype is not None and self.device.type == "cpu" else _null())
        batches = range(0, n, self.batch_size)
        with torch.inference_mode(), autocast:
            for start in tqdm(batches, desc="rerank", unit="batch", disable=not self.show_progress):
                idx = order[start:start + self.batch_size]
                bq = [queries[i] for i in idx]
                bd = [docs[i] for i in idx]
                strategy = "longest_first" if long_q[idx].any() else "only_second"
                enc = self.tokenizer(bq, bd, truncation=strategy, max_length=self.max_length,
                                     padding=True, return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits
                out[idx] = relevance_logit(logits, self.label).float().cpu().numpy()
        return out

    def _token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token counts without special tokens, tokenising each distinct text once."""
        uniq = list(dict.fromkeys(texts))
        enc = self.tokenizer(uniq, add_special_tokens=False, truncation=False)["input_ids"]
        lengths = {t: len(ids) for t, ids in zip(uniq, enc)}
        return np.fromiter((lengths[t] for t in texts), dtype=np.int64, count=len(texts))

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model_name, "max_length": self.max_length,
                             "batch_size": self.batch_size}
        if self.dtype is not None:
            p["dtype"] = str(self.dtype).replace("torch.", "")
        return p


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _dtype(name: Any) -> Any:
    import torch

    if name in (None, "float32", "fp32", torch.float32, "auto"):
        return None
    if isinstance(name, torch.dtype):
        return name
    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if str(name) not in table:
        raise ConfigError(f"unknown dtype {name!r} (choose float32, bfloat16, float16)")
    return table[str(name)]


def missing_base_hint(folder: Path) -> str:  # pragma: no cover - used in messages only
    return f"see {folder / 'rankkit.json'} for the base model it needs"


__all__ = ["CrossEncoder", "load_cross_encoder", "DEFAULT_MODEL", "MissingResourceError"]
