"""BM25 retrieval as a Stage: bm25s by default, Pyserini/Lucene as an option.

``BM25.build(corpus, backend=...)`` and ``BM25.load(dir)`` dispatch on a small
backend registry, so a new backend is one class plus one registry line.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..folders import require_manifest, write_manifest
from ..io import PathLike, atomic_dir
from ..pipeline import Retriever
from ..types import Corpus, Queries, Run

#: backend name -> "module:Class" (imported lazily)
BACKENDS: dict[str, str] = {
    "bm25s": "rankkit.retrievers.bm25:BM25",
    "lucene": "rankkit.retrievers.lucene:LuceneBM25",
}



def _backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise ConfigError(f"unknown BM25 backend {name!r} (available: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _make_stemmer(stemmer: Any) -> Any:
    if stemmer is None or stemmer is False:
        return None
    if not isinstance(stemmer, str):
        return stemmer  # a function or an object with stemWords(), as bm25s accepts
    import Stemmer

    try:
        return Stemmer.Stemmer(stemmer)
    except KeyError:
        raise ConfigError(
            f"unknown stemmer language {stemmer!r} (available: {', '.join(Stemmer.algorithms())})"
        ) from None


_NO_HITS = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the best ``k`` positive scores, best first (ties: lower row first).

    Only matching documents (score > 0) are ranked, as Lucene would. Selecting
    among them instead of calling ``bm25s.BM25.retrieve`` matters for speed:
    bm25s runs ``np.argpartition`` over every document, which numpy makes very
    slow when most scores tie at zero (2.2 s vs 0.6 s for 300 SciFact queries
    on 100k documents; see eval/bm25.py).
    """
    rows = np.flatnonzero(scores > 0)
    vals = scores[rows]
    if len(rows) > k:
        kth = np.partition(vals, len(vals) - k)[len(vals) - k]
        keep = vals >= kth
        rows, vals = rows[keep], vals[keep]
    order = np.lexsort((rows, -vals))[:k]
    return rows[order], vals[order]


class BM25(Retriever):
    """BM25 over a bm25s sparse index.

    >>> bm25 = BM25.build(corpus)            # English stemming and stopwords
    >>> run = (bm25 % 100)(queries)
    """

    name = "bm25"

    def __init__(self, retriever: Any, tokenizer: Any, docids: list[str], config: dict[str, Any],
                 n_threads: int | None = None, show_progress: bool = False):
        self._retriever = retriever
        self._tokenizer = tokenizer
        self.docids = np.asarray(docids, dtype=object)
        self.config = config
        self.n_threads = n_threads if n_threads is not None else (os.cpu_count() or 1)
        self.show_progress = show_progress

    # build / save / load -------------------------------------------------------
    @classmethod
    def build(cls, corpus: Any, k1: float = 1.5, b: float = 0.75, stemmer: Any = "english",
              stopwords: str | list[str] | None = "en", method: str = "lucene",
              backend: str = "bm25s", show_progress: bool = False, **backend_options: Any) -> Retriever:
        """Index ``corpus`` (a Corpus, mapping or ``datasets.Dataset``)."""
        if backend != "bm25s":
            return _backend_class(backend).build(corpus, k1=k1, b=b, stemmer=stemmer,
                                                 stopwords=stopwords, show_progress=show_progress,
                                                 **backend_options)
        if backend_options:
            raise ConfigError(f"unknown options for the bm25s backend: {sorted(backend_options)}")
        import bm25s
        from bm25s.tokenization import Tokenizer

        corpus = Corpus.coerce(corpus)
        if len(corpus) == 0:
            raise ConfigError("cannot index an empty corpus")
        tokenizer = Tokenizer(stopwords=stopwords or [], stemmer=_make_stemmer(stemmer))
        tokens = tokenizer.tokenize(corpus.contents, return_as="tuple", show_progress=show_progress)
        retriever = bm25s.BM25(k1=k1, b=b, method=method)
        retriever.index(tokens, show_progress=show_progress)
        config = {"k1": k1, "b": b, "method": method,
                  "stemmer": stemmer if isinstance(stemmer, str) or not stemmer else "custom",
                  "stopwords": stopwords if isinstance(stopwords, str) or stopwords is None else "custom",
                  "num_docs": len(corpus), "corpus_fingerprint": corpus.fingerprint()}
        return cls(retriever, tokenizer, corpus.ids, config, show_progress=show_progress)

    def save(self, folder: PathLike) -> Path:
        """Write the index folder atomically (a crash leaves no half-written index)."""
        if self.config.get("stemmer") == "custom":
            raise ConfigError("an index built with a custom stemmer function cannot be saved; "
                              "pass a Snowball language name instead")
        with atomic_dir(folder) as tmp:
            self._retriever.save(str(tmp / "bm25s"), show_progress=False)
            self._tokenizer.save_vocab(str(tmp / "bm25s"))
            self._tokenizer.save_stopwords(str(tmp / "bm25s"))
            (tmp / "docids.json").write_text(json.dumps(self.docids.tolist()))
            manifest = {"kind": "bm25", "backend": "bm25s", "format": 1, **self.config,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_manifest(tmp, manifest)
        return Path(folder)

    @classmethod
    def load(cls, folder: PathLike, mmap: bool = False, **kwargs: Any) -> Retriever:
        """Load an index saved by :meth:`save` (any backend)."""
        manifest = require_manifest(folder, kind="bm25")
        backend = manifest.get("backend", "bm25s")
        if backend != "bm25s":
            return _backend_class(backend).load(folder, **kwargs)
        import bm25s
        from bm25s.tokenization import Tokenizer

        folder = Path(folder)
        retriever = bm25s.BM25.load(str(folder / "bm25s"), mmap=mmap, show_progress=False)
        tokenizer = Tokenizer(stopwords=[], stemmer=_make_stemmer(manifest.get("stemmer")))
        tokenizer.load_vocab(str(folder / "bm25s"))
        tokenizer.load_stopwords(str(folder / "bm25s"))
        docids = json.loads((folder / "docids.json").read_text())
        config = {k: manifest[k] for k in ("k1", "b", "method", "stemmer", "stopwords", "num_docs",
                                           "corpus_fingerprint") if k in manifest}
        return cls(retriever, tokenizer, docids, config, **kwargs)

    # search ----------------------------------------------------------------------
    def retrieve(self, queries: Queries, k: int) -> Run:
        k = min(int(k), len(self.docids))
        tokens = self._tokenizer.tokenize(queries.texts, update_vocab=False, return_as="ids",
                                          show_progress=False)
        score = self._retriever.get_scores_from_ids  # bm25s's scoring, one query at a time
        bar = tqdm(total=len(tokens), desc="BM25 search", unit="q", disable=not self.show_progress)

        def search(chunk: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
            rows = []
            for ids in chunk:
                rows.append(top_k(score(ids), k) if len(ids) else _NO_HITS)
                bar.update()
            return rows

        threads = max(1, min(int(self.n_threads), len(tokens)))
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            size = -(-len(tokens) // threads)
            with ThreadPoolExecutor(threads) as pool:
                rows = [r for part in pool.map(search, [tokens[i:i + size] for i in
                                                        range(0, len(tokens), size)]) for r in part]
        else:
            rows = search(tokens)
        bar.close()
        return Run.from_sorted({qid: (self.docids[d], s.astype(np.float64))
                                for qid, (d, s) in zip(queries.ids, rows, strict=True)}, name=self.name)

    def params(self) -> dict[str, Any]:
        p = {"backend": "bm25s", **{k: self.config.get(k) for k in ("k1", "b", "stemmer", "stopwords")}}
        if self.k:
            p["k"] = self.k
        return p
