"""Text encoding for dense retrieval, through sentence-transformers.

``SentenceEncoder`` loads a ``SentenceTransformer`` from a resolved model
(named default, local folder or HF id; never a silent download when offline)
and encodes queries and documents the way the model's own configuration says:
its ``query``/``document`` prompts (unless a prefix is given, e.g. E5's
``"query: "``), its pooling, and its normalisation. Batching, length sorting,
the progress bar and multi-process pools are sentence-transformers' own; this
class adds the bookkeeping an index needs: which prompts and normalisation
were used, a fingerprint of the weights, and a count of truncated texts.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from ..models import missing_model_error, offline, resolve_model

#: similarity functions an inner-product faiss index can serve
_SUPPORTED_SIMILARITY = ("cosine", "dot")

#: document prompt names sentence-transformers' ``encode_document`` looks for, in order
_DOC_PROMPT_NAMES = ("document", "passage", "corpus")
#: manifest kinds of trained bi-encoder folders (``rankkit train retriever``): a full fine-tune
#: (a sentence-transformers folder) and a peft adapter over the named ``base_model``
KIND_RETRIEVER = "dense-retriever"
KIND_RETRIEVER_ADAPTER = "dense-retriever-adapter"


def backbone_attr(model: Any) -> str:
    """Attribute of the first sentence-transformers module that holds the HF network."""
    return "model" if "model" in model[0]._modules else "auto_model"  # sentence-transformers >= 6 / < 6


def load_sentence_transformer(location: str, device: str | None, local_only: bool,
                              ) -> tuple[Any, dict[str, Any] | None]:
    """A SentenceTransformer from a folder or id, and the manifest of a trained retriever folder.

    A ``dense-retriever-adapter`` folder loads its base model (checked against
    the recorded base fingerprint) and applies the peft adapter on top.
    """
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    from ..folders import model_fingerprint, read_manifest

    manifest = read_manifest(location) if Path(location).is_dir() else None
    if manifest is None or manifest["kind"] not in (KIND_RETRIEVER, KIND_RETRIEVER_ADAPTER):
        return SentenceTransformer(location, device=device, local_files_only=local_only), None
    if manifest["kind"] == KIND_RETRIEVER:
        return SentenceTransformer(location, device=device, local_files_only=local_only), manifest
    import peft

    base = resolve_model(manifest["base_model"])
    model = SentenceTransformer(base.location, device=device,
                                local_files_only=offline() or base.path is not None)
    if manifest.get("base_fingerprint") and model_fingerprint(model) != manifest["base_fingerprint"]:
        raise ConfigError(f"{location}: the adapter was trained on another version of its base model "
                          f"{manifest['base_model']!r} (weight fingerprint differs)")
    attr = backbone_attr(model)
    setattr(model[0], attr, peft.PeftModel.from_pretrained(getattr(model[0], attr), location))
    if manifest.get("max_seq_length"):
        model.max_seq_length = int(manifest["max_seq_length"])
    model.eval()
    return model, manifest


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's window and were cut."""


class SentenceEncoder:
    """A sentence-transformers bi-encoder with the settings an index records.

    ``query_prefix``/``doc_prefix`` override the model's configured prompts
    (``None`` keeps them; ``""`` means no prompt at all).
    """

    def __init__(self, model: str = "minilm", query_prefix: str | None = None,
                 doc_prefix: str | None = None, batch_size: int = 32, device: str | None = None,
                 show_progress: bool = False, processes: int | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ConfigError(f"processes must be a positive integer, got {processes!r}")
        self.model_name = str(model)
        ref = resolve_model(model)
        if ref.gguf_file is not None:
            raise ConfigError(f"model {self.model_name!r} is a GGUF language model, not a "
                              "sentence-transformers bi-encoder")
        try:
            self.model, trained = load_sentence_transformer(ref.location, device,
                                                            offline() or ref.path is not None)
        except RankkitError:
            raise
        except (OSError, ValueError) as exc:
            raise missing_model_error(self.model_name, exc) from exc
        self.location = ref.location
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.processes = processes
        self.similarity = str(self.model.similarity_fn_name)
        if self.similarity not in _SUPPORTED_SIMILARITY:
            raise ConfigError(
                f"model {self.model_name!r} uses {self.similarity!r} similarity; dense retrieval here "
                f"serves inner-product models ({', '.join(_SUPPORTED_SIMILARITY)})")
        has_norm = any(type(m).__name__ == "Normalize" for m in self.model)
        # cosine models without a Normalize module are normalised here, so inner product = cosine
        self.normalisation = "model" if has_norm else ("rankkit" if self.similarity == "cosine" else "none")
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix
        self.query_prompt = self._effective_prompt(query_prefix, ("query",))
        self.doc_prompt = self._effective_prompt(doc_prefix, _DOC_PROMPT_NAMES)
        self._fingerprint: str | None = None
        #: what a trained retriever folder says about itself (kind, base model, adapter method)
        self.trained = None if trained is None else {
            k: trained.get(k) for k in ("kind", "base_model", "method", "options")}

    # introspection ---------------------------------------------------------------
    @property
    def dimension(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # sentence-transformers < 6
        dim = get_dim()
        if not dim:
            raise ConfigError(f"model {self.model_name!r} does not report an embedding dimension")
        return int(dim)

    @property
    def max_seq_length(self) -> int | None:
        return self.model.max_seq_length

    def _effective_prompt(self, prefix: str | None, names: tuple[str, ...]) -> str:
        """The prompt sentence-transformers will prepend (mirrors encode_query/encode_document)."""
        if prefix is not None:
            return prefix
        prompts = self.model.prompts or {}
        for name in names:
            if name in prompts:
                return prompts[name] or ""
        default = self.model.default_prompt_name
        return (prompts.get(default) or "") if default else ""

    def fingerprint(self) -> str:
        """A short hash of the architecture and a sample of every weight tensor.

        Cheap (a few values per tensor), yet it tells two fine-tunes of one base
        apart, so an index is never searched with a different model's vectors.
        """
        if self._fingerprint is None:
            from ..folders import model_fingerprint

            self._fingerprint = model_fingerprint(
                self.model, f"{self.dimension}|{self.max_seq_length}|{self.normalisation}")
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_name, "model_location": self.location,
                "model_fingerprint": self.fingerprint(), "dimension": self.dimension,
                "similarity": self.similarity, "normalisation": self.normalisation,
                "max_seq_length": self.max_seq_length, "query_prefix": self.query_prefix,
                "doc_prefix": self.doc_prefix, "query_prompt": self.query_prompt,
                "doc_prompt": self.doc_prompt, **({"trained": self.trained} if self.trained else {})}

    # encoding --------------------------------------------------------------------
    def count_truncated(self, texts: list[str], prompt: str) -> int:
        """How many texts (with ``prompt``) exceed the model's token window."""
        window = self.max_seq_length
        tokenizer = getattr(self.model, "tokenizer", None)
        if not window or tokenizer is None or not texts:
            return 0
        # a token covers at least one UTF-8 byte, so short texts cannot overflow: skip tokenizing them
        budget = window - len(prompt.encode("utf-8")) - 8
        long_texts = [prompt + t for t in texts if len(t.encode("utf-8")) > budget]
        if not long_texts:
            return 0
        ids = tokenizer(long_texts, add_special_tokens=True, truncation=False, verbose=False,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return sum(len(x) > window for x in ids)

    def _encode(self, texts: list[str], kind: str, show_progress: bool | None) -> np.ndarray:
        if kind == "query":
            fn, prefix = self.model.encode_query, self.query_prefix
        else:
            fn, prefix = self.model.encode_document, self.doc_prefix
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size, "convert_to_numpy": True,
            "normalize_embeddings": self.normalisation == "rankkit",
            "show_progress_bar": self.show_progress if show_progress is None else show_progress,
        }
        if prefix is not None:
            kwargs["prompt"] = prefix
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        if self.processes and self.processes > 1 and len(texts) > self.batch_size:
            pool = self.model.start_multi_process_pool(["cpu"] * self.processes)
            try:
                out = fn(texts, pool=pool, **kwargs)
            finally:
                self.model.stop_multi_process_pool(pool)
                for queue in (pool["input"], pool["output"]):  # else their semaphores leak
                    queue.close()
                    queue.join_thread()
        else:
            out = fn(texts, **kwargs)
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_documents(self, texts: list[str], show_progress: bool | None = None,
                         ) -> tuple[np.ndarray, int]:
        """Embeddings of ``texts`` as documents, and how many were truncated (warned once)."""
        truncated = self.count_truncated(texts, self.doc_prompt)
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} documents are longer than the {self.max_seq_length}-token "
                f"window of model {self.model_name!r} and were truncated", TruncationWarning,
                stacklevel=3)
        return self._encode(texts, "document", show_progress), truncated

    def encode_queries(self, texts: list[str], show_progress: bool | None = None) -> tuple[np.ndarray, int]:
        """Embeddings of ``texts`` as queries, and how many were truncated (the caller warns)."""
        return self._encode(texts, "query", show_progress), self.count_truncated(texts, self.query_prompt)

