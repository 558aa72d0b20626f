"""Dense retrieval as a Stage: sentence-transformers encodes, faiss searches.

>>> dense = DenseRetriever.build(corpus, model="minilm", index="hnsw")
>>> dense.save("idx/dense")
>>> dense = DenseRetriever.load("idx/dense", corpus=corpus)   # checks corpus and model
>>> run = (dense % 100)(queries)
>>> rerank = bm25 % 100 >> dense.as_reranker()               # scores only the candidates

An index folder holds ``rankkit.json`` (kind ``"dense"``: model, its weight
fingerprint, dimension, normalisation, prompts, index type and parameters,
corpus fingerprint, number of truncated documents), ``index.faiss``,
``docids.json`` and, for lossy ``ivfpq`` indexes, ``vectors.faiss``: a flat
index of the exact vectors (flat and HNSW indexes hold them already), used by
the bi-encoder reranker and by ``refine=`` re-scoring.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataFormatError, MissingResourceError
from ..folders import MANIFEST, require_manifest, write_manifest
from ..io import PathLike, atomic_dir
from ..pipeline import Retriever
from ..types import Corpus, Queries, Run
from .encoder import SentenceEncoder, TruncationWarning
from .faiss_index import (
    IndexType,
    exact_index,
    index_type,
    read_index,
    stored_vectors,
    write_index,
)

FORMAT = 1
#: faiss spellings accepted for the snake_case option names
_ALIASES = {"efSearch": "ef_search", "efConstruction": "ef_construction"}
#: queries per faiss search call (bounds the (queries x k) result arrays)
_SEARCH_CHUNK = 4096


def _canonical(options: dict[str, Any]) -> dict[str, Any]:
    return {_ALIASES.get(k, k): v for k, v in options.items()}


class DenseRetriever(Retriever):
    """Bi-encoder retrieval over a faiss inner-product index."""

    name = "dense"

    def __init__(self, encoder: SentenceEncoder, index: Any, kind: IndexType, docids: list[str],
                 config: dict[str, Any], search: dict[str, Any] | None = None,
                 exact: Any = None, corpus: Corpus | None = None, show_progress: bool = False):
        self.encoder = encoder
        self.show_progress = show_progress  # progress bar while encoding queries
        self._index = index
        self.kind = kind
        self.docids = np.asarray(docids, dtype=object)
        self.config = config
        self.search_options = kind.check_search(_canonical({**kind.search_options, **(search or {})}))
        self._exact = exact  # flat side index of exact vectors, for lossy index kinds
        self._embeddings: np.ndarray | None = None
        self.corpus = corpus
        self._row: dict[str, int] | None = None
        self._queries_warned = False

    # build -----------------------------------------------------------------------
    @classmethod
    def build(cls, corpus: Any, model: str | SentenceEncoder = "minilm", index: str = "flat",
              batch_size: int = 32, query_prefix: str | None = None, doc_prefix: str | None = None,
              show_progress: bool = False, processes: int | None = None, device: str | None = None,
              **index_options: Any) -> DenseRetriever:
        """Encode ``corpus`` and index it.

        ``model``: ``"minilm"``, a local folder or an HF id (or a loaded
        :class:`SentenceEncoder`). ``index``: ``flat``, ``hnsw`` (``M``,
        ``ef_construction``, ``ef_search``) or ``ivfpq`` (``nlist``, ``m``,
        ``nbits``, ``nprobe``). ``processes > 1`` encodes in a process pool.
        """
        kind = index_type(index)
        options = _canonical(index_options)
        kind.check_options(options)  # fail on a typo before minutes of encoding
        corpus = Corpus.coerce(corpus)
        if len(corpus) == 0:
            raise ConfigError("cannot index an empty corpus")
        encoder = model if isinstance(model, SentenceEncoder) else SentenceEncoder(
            model, query_prefix=query_prefix, doc_prefix=doc_prefix, batch_size=batch_size,
            device=device, processes=processes)
        vectors, truncated = encoder.encode_documents(corpus.contents, show_progress=show_progress)
        return cls.from_embeddings(corpus, vectors, encoder, index=index, truncated=truncated,
                                   **options)

    @classmethod
    def from_embeddings(cls, corpus: Any, embeddings: np.ndarray, encoder: SentenceEncoder,
                        index: str = "flat", truncated: int = 0, **index_options: Any) -> DenseRetriever:
        """Index document vectors already encoded by ``encoder`` (rows follow ``corpus.ids``)."""
        corpus = Corpus.coerce(corpus)
        return cls._index_vectors(encoder, corpus.ids, embeddings, corpus.fingerprint(), index,
                                  truncated, index_options, corpus)

    @classmethod
    def _index_vectors(cls, encoder: SentenceEncoder, docids: list[str], embeddings: np.ndarray,
                       fingerprint: str, index: str, truncated: int, options: dict[str, Any],
                       corpus: Corpus | None) -> DenseRetriever:
        kind = index_type(index)
        build_opts, search = kind.check_options(_canonical(options))
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(docids), encoder.dimension):
            raise ConfigError(f"embeddings of shape {vectors.shape} do not match {len(docids)} "
                              f"documents of dimension {encoder.dimension}")
        faiss_index, used = kind.build(vectors, **build_opts)
        config = {**encoder.describe(), "index": {"type": kind.name, **used},
                  "num_docs": len(docids), "corpus_fingerprint": fingerprint,
                  "truncated": int(truncated)}
        exact = None if kind.exact_vectors else exact_index(vectors)
        return cls(encoder, faiss_index, kind, list(docids), config, search=search,
                   exact=exact, corpus=corpus)

    def with_index(self, index: str, **index_options: Any) -> DenseRetriever:
        """The same documents in another faiss index, from the stored vectors (no re-encoding)."""
        return self._index_vectors(self.encoder, self.docids.tolist(), np.asarray(self.embeddings),
                                   self.config["corpus_fingerprint"], index,
                                   self.config.get("truncated", 0), index_options, self.corpus)

    def with_search(self, **search: Any) -> DenseRetriever:
        """A copy with other search knobs (``ef_search`` for hnsw, ``nprobe``/``refine`` for ivfpq)."""
        clone = copy.copy(self)
        clone.search_options = self.kind.check_search(_canonical({**self.search_options, **search}))
        return clone

    # stored vectors ------------------------------------------------------------------
    @property
    def embeddings(self) -> np.ndarray:
        """Exact document vectors, one row per ``docids`` entry (a view, not a copy)."""
        if self._embeddings is None:
            self._embeddings = stored_vectors(self._exact if self._exact is not None else self._index)
        if self._embeddings is None:
            raise DataFormatError(f"a {self.kind.name!r} index keeps no exact vectors")
        return self._embeddings

    def rows(self, docids: np.ndarray) -> np.ndarray:
        """Row of each docid in :attr:`embeddings`; -1 where the index does not hold it."""
        if self._row is None:
            self._row = {d: i for i, d in enumerate(self.docids.tolist())}
        row = self._row
        return np.fromiter((row.get(d, -1) for d in docids), dtype=np.int64, count=len(docids))

    # save / load ---------------------------------------------------------------------
    def save(self, folder: PathLike) -> Path:
        """Write the index folder atomically (a crash leaves no half-written index)."""
        with atomic_dir(folder) as tmp:
            write_index(self._index, str(tmp / "index.faiss"))
            (tmp / "docids.json").write_text(json.dumps(self.docids.tolist()))
            files = {"index": "index.faiss", "docids": "docids.json"}
            if self._exact is not None:
                write_index(self._exact, str(tmp / "vectors.faiss"))
                files["vectors"] = "vectors.faiss"
            manifest = {"kind": "dense", "format": FORMAT, **self.config, "search": self.search_options,
                        "files": files, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_manifest(tmp, manifest)
        return Path(folder)

    @classmethod
    def load(cls, folder: PathLike, corpus: Any = None, model: str | None = None, mmap: bool = False,
             batch_size: int = 32, show_progress: bool = False, device: str | None = None,
             **search: Any) -> DenseRetriever:
        """Load an index saved by :meth:`save`.

        ``corpus``/``model``, when given, must be the ones the index was built
        from (checked against the manifest's fingerprints). ``mmap=True`` maps
        the vectors from disk instead of reading them into memory.
        """
        folder = Path(folder)
        manifest = require_manifest(folder, kind="dense")
        if manifest.get("format") != FORMAT:
            raise DataFormatError(f"unsupported dense index format {manifest.get('format')!r}",
                                  folder / MANIFEST)
        kind = index_type(manifest["index"]["type"])
        checked = None
        if corpus is not None:
            checked = Corpus.coerce(corpus)
            _check_corpus(folder, manifest, checked)
        encoder = _load_encoder(folder, manifest, model, batch_size=batch_size, device=device)
        files = manifest.get("files", {})
        index = read_index(str(folder / files.get("index", "index.faiss")), kind, mmap=mmap)
        docids = json.loads((folder / files.get("docids", "docids.json")).read_text())
        exact = None
        if "vectors" in files:
            exact = read_index(str(folder / files["vectors"]), index_type("flat"), mmap=mmap)
        n = manifest["num_docs"]
        if index.ntotal != n or len(docids) != n or (exact is not None and exact.ntotal != n):
            raise DataFormatError(f"index files disagree on the number of documents (manifest {n}, "
                                  f"faiss {index.ntotal}, docids {len(docids)})", folder)
        config = {k: v for k, v in manifest.items()
                  if k not in ("kind", "format", "search", "files", "created")}
        return cls(encoder, index, kind, docids, config,
                   search={**manifest.get("search", {}), **search}, exact=exact,
                   corpus=checked, show_progress=show_progress)

    # search ---------------------------------------------------------------------------
    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors in one batched call; over-long queries are reported once."""
        vectors, truncated = self.encoder.encode_queries(texts, show_progress=self.show_progress)
        if truncated and not self._queries_warned:
            self._queries_warned = True
            warnings.warn(f"{truncated} of {len(texts)} queries are longer than the "
                          f"{self.encoder.max_seq_length}-token window of model "
                          f"{self.encoder.model_name!r} and were truncated", TruncationWarning,
                          stacklevel=3)
        return vectors

    def retrieve(self, queries: Queries, k: int) -> Run:
        k = min(int(k), len(self.docids))
        vectors = self.encode_queries(queries.texts)
        rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        qids = queries.ids
        for start in range(0, len(qids), _SEARCH_CHUNK):
            scores, labels = self.search_vectors(vectors[start:start + _SEARCH_CHUNK], k)
            for qid, row_labels, row_scores in zip(qids[start:start + _SEARCH_CHUNK], labels, scores):
                keep = row_labels >= 0  # approximate indexes pad missing results with -1
                rankings[qid] = (self.docids[row_labels[keep]], row_scores[keep].astype(np.float64))
        return Run.from_sorted(rankings, name=self.name)

    def search_vectors(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss search of encoded queries: (scores, row labels), -1 where fewer than k."""
        return self.kind.search(self._index, self._exact, vectors, k, self.search_options)

    def as_reranker(self, corpus: Any = None, **kwargs: Any) -> Any:
        """A :class:`~rankkit.rerankers.biencoder.BiEncoderReranker` over this index's vectors."""
        from ..rerankers.biencoder import BiEncoderReranker

        return BiEncoderReranker(self, corpus=corpus, **kwargs)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.encoder.model_name, "index": self.kind.name,
                             **self.search_options}
        if self.k:
            p["k"] = self.k
        return p


def _check_corpus(folder: Path, manifest: dict[str, Any], corpus: Corpus) -> None:
    if corpus.fingerprint() != manifest.get("corpus_fingerprint"):
        raise ConfigError(
            f"{folder}: the index was built from another corpus ({manifest.get('num_docs')} documents, "
            f"fingerprint {manifest.get('corpus_fingerprint')}) than the one given ({len(corpus)} "
            f"documents, fingerprint {corpus.fingerprint()}); rebuild the index for this corpus")


def _load_encoder(folder: Path, manifest: dict[str, Any], model: str | None,
                  **kwargs: Any) -> SentenceEncoder:
    built_with = manifest["model"]
    try:
        encoder = SentenceEncoder(model if model is not None else built_with,
                                  query_prefix=manifest.get("query_prefix"),
                                  doc_prefix=manifest.get("doc_prefix"), **kwargs)
    except MissingResourceError as e:
        if model is not None:
            raise
        raise MissingResourceError(f"{folder}: the index was built with model {built_with!r}, which "
                                   f"is not available here ({e}); pass model= the same model") from e
    if encoder.fingerprint() != manifest.get("model_fingerprint") or \
            encoder.dimension != manifest.get("dimension"):
        given = f"model {model!r}" if model is not None else f"model {built_with!r} as installed now"
        raise ConfigError(
            f"{folder}: the index was built with model {built_with!r} (dimension "
            f"{manifest.get('dimension')}, fingerprint {manifest.get('model_fingerprint')}), but "
            f"{given} differs (dimension {encoder.dimension}, fingerprint {encoder.fingerprint()}); "
            "rebuild the index or load it with the model it was built with")
    for side in ("query", "doc"):
        if getattr(encoder, f"{side}_prompt") != manifest.get(f"{side}_prompt", ""):
            raise ConfigError(
                f"{folder}: the index was built with {side} prompt "
                f"{manifest.get(f'{side}_prompt')!r}, but the model now gives "
                f"{getattr(encoder, f'{side}_prompt')!r}; rebuild the index")
    return encoder
