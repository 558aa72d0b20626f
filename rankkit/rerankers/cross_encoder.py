"""Cross-encoder reranking: score every (query, document) pair with one transformer.

``CrossEncoder`` loads any Hugging Face sequence-classification cross-encoder
(HF id, folder, sentence-transformers CrossEncoder folder) or a rankkit adapter
folder (base model + peft adapter + trained head), and scores all candidate
pairs of a run at once: pairs are tokenised once, sorted by exact token
length so each batch is padded only to its own longest pair, and the forward
passes run under ``torch.inference_mode()``; on BERT-family heads the last
layer is computed for [CLS] alone (``cls_only.py``).
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

from ..dtypes import dtype_name, torch_dtype
from ..errors import ConfigError, MissingResourceError, RankkitError
from ..types import Corpus
from .base import Reranker
from .cls_only import cls_only_last_layer

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

    from ..folders import load_reranker, read_manifest
    from ..models import missing_model_error, resolve_model
    from ..quiet import quiet_transformers

    ref = resolve_model(model)
    if ref.path is not None and ref.path.is_dir() and read_manifest(ref.path) is not None:
        return load_reranker(ref.path, merged=True)
    quiet_transformers()
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
    (default: the only logit, or class 1 of a two-class head). ``cls_only``
    computes the last layer for [CLS] alone on BERT-family heads (same scores,
    less compute; ``cls_only.py``). Pairs are tokenised once per ``chunk_size``
    pairs and sorted by exact token length inside the chunk. ``compile=True``
    runs the model through ``torch.compile`` (dynamic shapes, frozen weights):
    scores agree to float noise, throughput rises ~1.09x more on CPU, and the
    first call pays a one-off compilation (~30 s on 2 cores), so it suits long
    runs (see eval/RESULTS.md).
    ``adapters={"name": folder, ...}`` loads several rankkit adapter folders onto
    one copy of the base ``model`` (default: the adapters' own base) and scores
    with ``adapter`` (default: the first); ``use(name)`` returns a reranker bound
    to another adapter that shares the loaded model (``multi_adapter.py``).
    ``interpolate=w`` returns ``(1-w)*z(first stage) + w*z(cross-encoder)`` per
    query instead of the raw cross-encoder scores (see ``Reranker.interpolated``);
    ``interpolate="auto"`` takes the weight tuned for the model and stored in
    its ``rankkit.json`` (``"interpolate"``), or none.
    """

    name = "cross-encoder"

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, corpus: Any = None,
                 max_length: int | None = None, batch_size: int = 32, dtype: str | None = None,
                 device: str | None = None, label: int | None = None, show_progress: bool = True,
                 cls_only: bool = True, chunk_size: int = 8192, compile: bool = False,
                 interpolate: float | str | None = None,
                 adapters: Mapping[str, str | os.PathLike] | None = None, adapter: str | None = None):
        import torch

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        self.model_name = str(model)
        self.corpus = _text_source(corpus)
        self.adapter: str | None = None
        self.adapter_manifests: dict[str, dict[str, Any]] = {}
        if adapters:
            from .multi_adapter import load_adapters

            loaded = load_adapters(None if str(model) == DEFAULT_MODEL else model, adapters)
            self.model, self.tokenizer = loaded.model, loaded.tokenizer
            self.adapter_manifests = loaded.manifests
            self.adapter = adapter if adapter is not None else loaded.names[0]
            self.manifest = self.adapter_manifests.get(self.adapter, {})
            self.model_name = f"{loaded.base}+{self.adapter}"
        elif adapter is not None:
            raise ConfigError("adapter= chooses one of the adapters= folders; pass adapters={name: folder}")
        else:
            self.model, self.tokenizer, self.manifest = load_cross_encoder(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _low_precision(dtype)
        self.model.to(self.device)
        if self.dtype is not None and self.device.type != "cpu":
            self.model.to(self.dtype)
        limit = min(int(getattr(self.model.config, "max_position_embeddings", 512) or 512), 512)
        if getattr(self.model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2
        self._limit, self._max_length_arg, self._interpolate_arg = limit, max_length, interpolate
        if self.adapter is not None:
            from .multi_adapter import activate

            activate(self.model, self.adapter)
        self.max_length = int(max_length or self.manifest.get("max_length") or limit)
        if self.max_length > limit:
            raise ConfigError(f"max_length {self.max_length} exceeds the model's window of {limit} tokens")
        self.batch_size = int(batch_size)
        self.label = label
        self.show_progress = show_progress
        self.num_special = self.tokenizer.num_special_tokens_to_add(pair=True)
        self.cls_only = cls_only
        self.interpolate = self.resolve_interpolation(interpolate)
        self.compile = bool(compile)
        self._compiled: Any = None
        self.chunk_size = int(chunk_size)
        self._uses_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.stats = {"pairs": 0, "truncated": 0, "empty": 0, "query_truncated": 0}
        self._fingerprint: str | None = None

    def use(self, adapter: str) -> CrossEncoder:
        """A reranker that scores with loaded adapter ``adapter``, sharing this one's model (no copy)."""
        import copy

        from .multi_adapter import activate

        if not self.adapter_manifests:
            raise ConfigError("use() picks one of the adapters loaded with adapters={name: folder}")
        if adapter not in self.adapter_manifests:
            raise ConfigError(f"no adapter named {adapter!r} is loaded (loaded: {', '.join(self.adapter_manifests)})")
        view = copy.copy(self)
        view.adapter, view.manifest = adapter, self.adapter_manifests[adapter]
        view.model_name = f"{self.model_name.rsplit('+', 1)[0]}+{adapter}"
        view.max_length = int(self._max_length_arg or view.manifest.get("max_length") or self._limit)
        if view.max_length > self._limit:
            raise ConfigError(f"max_length {view.max_length} exceeds the model's window of {self._limit} tokens")
        view.interpolate = view.resolve_interpolation(self._interpolate_arg)
        view.stats = {k: 0 for k in self.stats}
        view._fingerprint = None
        activate(self.model, adapter)
        return view

    def tuned_interpolation(self) -> float | None:
        """``interpolate="auto"``: the weight tuned for this model and saved in its rankkit.json, if any."""
        return self.manifest.get("interpolate")

    def fingerprint(self) -> str:
        """A short hash of the weights, window and label: the key of cached scores (``ScoreCache``)."""
        from ..folders import model_fingerprint

        if self._fingerprint is None:
            extra = f"|{self.adapter}" if self.adapter is not None else ""
            self._fingerprint = model_fingerprint(self.model, header=f"ce|{self.max_length}|{self.label}{extra}")
        return self._fingerprint

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

    def predict(self, queries: Sequence[str], docs: Sequence[str], adapter: str | None = None) -> np.ndarray:
        """Score aligned (query, document) texts; returns float32 raw relevance logits.

        ``adapter`` scores with another loaded adapter for this call (see ``use``).
        """
        import torch
        from tqdm.auto import tqdm

        from .heads import relevance_logit

        if adapter is not None and adapter != self.adapter:
            return self.use(adapter).predict(queries, docs)
        if self.adapter is not None:
            from .multi_adapter import activate

            activate(self.model, self.adapter)

        if len(queries) != len(docs):
            raise RankkitError(f"{len(queries)} queries but {len(docs)} documents")
        n = len(docs)
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        q_len = self._token_lengths(queries)
        long_q = q_len + self.num_special >= self.max_length - 1
        empty = int(sum(1 for d in docs if not d.strip()))
        if empty:
            log.warning("%d of %d candidate documents are empty; they are scored as empty text", empty, n)
        if long_q.any():
            log.warning("%d queries alone fill the %d-token window; they are truncated too",
                        int(long_q.sum()), self.max_length)
        autocast = (torch.autocast("cpu", dtype=self.dtype)
                    if self.dtype is not None and self.device.type == "cpu" else _null())
        truncated = 0
        chunk = max(self.chunk_size, self.batch_size)
        net = self._network()
        bar = tqdm(total=n, desc="rerank", unit="pair", disable=not self.show_progress)
        with torch.inference_mode(), autocast, cls_only_last_layer(self.model, self.cls_only):
            for c0 in range(0, n, chunk):
                ids, types = self._encode(queries[c0:c0 + chunk], docs[c0:c0 + chunk], long_q[c0:c0 + chunk])
                lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
                truncated += int((lengths >= self.max_length).sum())
                order = np.argsort(-lengths, kind="stable")
                for b0 in range(0, len(order), self.batch_size):
                    idx = order[b0:b0 + self.batch_size]
                    batch = self._pad(ids, types, idx, lengths)
                    logits = net(**{k: v.to(self.device) for k, v in batch.items()}).logits
                    out[c0 + idx] = relevance_logit(logits, self.label).float().cpu().numpy()
                    bar.update(len(idx))
        bar.close()
        self.stats["pairs"] += n
        self.stats["truncated"] += truncated
        self.stats["empty"] += empty
        self.stats["query_truncated"] += int(long_q.sum())
        if truncated:
            log.warning("%d of %d pairs fill the %d-token window: documents truncated", truncated, n,
                        self.max_length)
        if n > 1 and float(np.ptp(out)) <= 1e-5 * max(1.0, float(np.abs(out).max())) and len(set(docs)) > 1:
            log.warning("%s gives all %d pairs the same score %.4g: its head is constant (training "
                        "collapsed, e.g. a too high learning rate?), so it cannot rank", self.model_name, n, out[0])
        return out

    def _network(self) -> Any:
        """The model to call: itself, or its compiled form (built once)."""
        if not self.compile:
            return self.model
        if self._compiled is None:
            import torch

            self._compiled = torch.compile(self.model, dynamic=True, options={"freezing": True})
        return self._compiled

    def _encode(self, queries: Sequence[str], docs: Sequence[str],
                long_q: np.ndarray) -> tuple[list[list[int]], list[list[int]] | None]:
        """Tokenise pairs once (no padding): only the document is cut, unless the query alone is too long."""
        ids: list[list[int]] = [[] for _ in docs]
        types: list[list[int]] | None = [[] for _ in docs] if self._uses_types else None
        for strategy, sel in (("only_second", np.flatnonzero(~long_q)), ("longest_first", np.flatnonzero(long_q))):
            if not len(sel):
                continue
            enc = self.tokenizer([queries[i] for i in sel], [docs[i] for i in sel], truncation=strategy,
                                 max_length=self.max_length, padding=False)
            for j, i in enumerate(sel.tolist()):
                ids[i] = enc["input_ids"][j]
                if types is not None:
                    types[i] = enc["token_type_ids"][j]
        return ids, types

    def _pad(self, ids: list[list[int]], types: list[list[int]] | None, idx: np.ndarray,
             lengths: np.ndarray) -> dict[str, Any]:
        """Right-pad one batch to its own longest pair."""
        import torch

        width = int(lengths[idx].max())
        input_ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        tt = np.zeros((len(idx), width), dtype=np.int64) if types is not None else None
        for row, i in enumerate(idx.tolist()):
            m = len(ids[i])
            input_ids[row, :m] = ids[i]
            mask[row, :m] = 1
            if tt is not None:
                tt[row, :m] = types[i]
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if tt is not None:
            batch["token_type_ids"] = torch.from_numpy(tt)
        return batch

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
            p["dtype"] = dtype_name(self.dtype)
        if self.compile:
            p["compile"] = True
        if self.adapter is not None:
            p["adapter"] = self.adapter
        if self.interpolate is not None:
            p["interpolate"] = self.interpolate
        return p


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _low_precision(dtype: Any) -> Any:
    """The ``torch.dtype`` to run in, or None for full precision (float32, "auto", None)."""
    import torch

    dt = torch_dtype(dtype)
    return None if dt in (None, torch.float32) else dt


__all__ = ["CrossEncoder", "load_cross_encoder", "DEFAULT_MODEL", "MissingResourceError"]
