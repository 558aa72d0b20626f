"""``Compressor``: extract-then-generate context compression between reranker and generator.

    pipe = bm25 % 100 >> reranker % 3 >> rk.Compressor(corpus, budget=200) >> rk.Generator(...)

As the extractive half of the hybrid patent-summarisation architecture (LexRank
extraction, then an abstractive LLM), the passages of each query are split into
sentences, each sentence is scored by its LexRank centrality over the whole
passage set combined with its similarity to the query, and the best sentences
are kept within a token budget. Kept sentences stay in their original order
and grouped under their document, so the generator still numbers *documents*
``[1]..[k]`` and a citation maps back to the document a sentence came from.

LexRank is a short numpy implementation here (continuous LexRank: TF-IDF
cosine graph, PageRank power iteration), not a library: ``sumy`` needs NLTK's
punkt data downloaded at run time (no network here) and half a dozen
dependencies, and the ``lexrank`` package (last release 2018) wants a
background corpus for its IDF and pulls ``path.py``/``urlextract``. Sentence
splitting is a regex for the same reason (no punkt model offline); it splits
after ``.!?`` followed by a capital, digit or bracket, which suits abstracts.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..pipeline import Stage
from ..types import Queries, Run

log = logging.getLogger("rankkit")

#: ``Run.extras`` key with ``{qid: {docid: compressed text}}`` (read by the Generator)
COMPRESSED = "compressed"
#: ``Run.extras`` key with ``{qid: [Sentence, ...]}`` (the kept sentences, in order)
SENTENCES = "sentences"

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Sentence:
    """One extracted sentence and the document it came from."""

    docid: str
    text: str
    score: float
    #: position of the sentence inside its document
    index: int
    tokens: int


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (regex split after ``.!?``; blank pieces dropped)."""
    return [s.strip() for s in _SPLIT.split(" ".join(str(text).split())) if s.strip()]


def tfidf(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised TF-IDF rows (smoothed IDF over ``texts``), dense: a few dozen sentences per query."""
    bags = [Counter(w.lower() for w in _WORD.findall(t)) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted({w for b in bags for w in b}))}
    n = len(texts)
    x = np.zeros((n, max(1, len(vocab))))
    for i, b in enumerate(bags):
        for w, c in b.items():
            x[i, vocab[w]] = c
    df = (x > 0).sum(0)
    x *= np.log((1 + n) / (1 + df)) + 1.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def lexrank(sim: np.ndarray, threshold: float = 0.1, damping: float = 0.85, iters: int = 100,
            tol: float = 1e-8) -> np.ndarray:
    """Continuous LexRank (Erkan & Radev, 2004): stationary distribution of the cosine graph.

    Edges below ``threshold`` are dropped, rows normalised, and the power
    iteration runs with PageRank's damping until the scores move less than ``tol``.
    """
    n = len(sim)
    if n == 0:
        return np.zeros(0)
    w = np.where(sim >= threshold, sim, 0.0)
    np.fill_diagonal(w, 0.0)
    rows = w.sum(1, keepdims=True)
    m = np.where(rows > 0, w / np.where(rows > 0, rows, 1.0), 1.0 / n)   # dangling rows: uniform
    p = np.full(n, 1.0 / n)
    for _ in range(iters):
        nxt = (1 - damping) / n + damping * (m.T @ p)
        if np.abs(nxt - p).sum() < tol:
            return nxt
        p = nxt
    return p


def score_sentences(query: str, sentences: Sequence[str], query_weight: float = 0.5,
                    threshold: float = 0.1, damping: float = 0.85) -> np.ndarray:
    """``(1 - w) * centrality / max centrality + w * cosine(sentence, query)`` per sentence."""
    if not sentences:
        return np.zeros(0)
    x = tfidf([*sentences, query])
    s, q = x[:-1], x[-1]
    central = lexrank(s @ s.T, threshold, damping)
    central = central / central.max() if central.max() > 0 else central
    return (1 - query_weight) * central + query_weight * (s @ q)


def select(scores: Sequence[float], lengths: Sequence[int], budget: int) -> list[int]:
    """Indices of the best-scoring sentences whose lengths sum to at most ``budget``, in original order.

    Greedy by score: a sentence that no longer fits is skipped and shorter
    ones after it may still fill the budget.
    """
    left, keep = int(budget), []
    for i in sorted(range(len(scores)), key=lambda j: (-scores[j], j)):
        if lengths[i] <= left:
            keep.append(i)
            left -= lengths[i]
    return sorted(keep)


class TokenCounter:
    """Token counting and truncation: a generator's tokenizer (via its backend) or whitespace words."""

    def __init__(self, tokenizer: Any = None):
        backend = getattr(tokenizer, "backend", tokenizer)      # a Generator, or a Backend
        if tokenizer is None:
            self.name = "words"
            self.count: Callable[[Sequence[str]], list[int]] = lambda texts: [len(t.split()) for t in texts]
            self.truncate: Callable[[str, int], str] = lambda t, n: " ".join(t.split()[:n])
        elif hasattr(backend, "count_tokens") and hasattr(backend, "truncate"):
            self.name = f"tokens ({getattr(backend, 'model_name', '') or backend.name})"
            self.count, self.truncate = backend.count_tokens, backend.truncate
        else:
            raise ConfigError("Compressor tokenizer= takes a Generator, an LLM backend or None (words), "
                              f"not {type(tokenizer).__name__}")


def compress(query: str, passages: Sequence[tuple[str, str]], budget: int, counter: TokenCounter | None = None,
             query_weight: float = 0.5, threshold: float = 0.1, damping: float = 0.85
             ) -> tuple[list[Sentence], int]:
    """Kept sentences of ``[(docid, text), ...]`` within ``budget`` tokens, and how many were cut.

    When even the best sentence is longer than the budget, it alone is kept,
    cut to the budget (returned count 1), so the budget always holds.
    """
    _check_budget(budget)
    if not passages or not any(str(t).strip() for _, t in passages):
        raise ConfigError("compress() needs at least one non-empty passage")
    counter = counter or TokenCounter()
    kept, cut = _compress_many([query], [list(passages)], int(budget), counter, query_weight, threshold, damping)
    return kept[0], cut[0]


def _compress_many(queries: Sequence[str], passages: Sequence[Sequence[tuple[str, str]]], budget: int,
                   counter: TokenCounter, query_weight: float, threshold: float, damping: float
                   ) -> tuple[list[list[Sentence]], list[int]]:
    split = [[(str(d), j, s) for d, t in ps for j, s in enumerate(split_sentences(t))] for ps in passages]
    flat = [s for sents in split for _, _, s in sents]
    lengths = iter(counter.count(flat) if flat else [])           # one tokenizer call for every query
    out, cuts = [], []
    for query, sents in zip(queries, split):
        lens = [next(lengths) for _ in sents]
        if not sents:
            out.append([])
            cuts.append(0)
            continue
        scores = score_sentences(query, [s for _, _, s in sents], query_weight, threshold, damping)
        keep = select(scores, lens, budget)
        cut = 0
        if not keep:                     # every sentence is longer than the budget: cut the best one
            best = int(np.argmax(scores))
            d, j, s = sents[best]
            text = counter.truncate(s, budget)
            while text and counter.count([text])[0] > budget:   # re-tokenising may shift a token
                text = counter.truncate(text, max(0, counter.count([text])[0] - 1))
            sents, lens, keep, cut = [(d, j, text)], [counter.count([text])[0]], [0], 1
            scores = np.array([scores[best]])
        out.append([Sentence(sents[i][0], sents[i][2], float(scores[i]), sents[i][1], int(lens[i]))
                    for i in keep])
        cuts.append(cut)
    return out, cuts


def _check_budget(budget: Any) -> None:
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ConfigError(f"compression budget must be an integer >= 1 (tokens), got {budget!r}")


class Compressor(Stage):
    """Keeps, per query, the sentences of its top ``k`` passages most central and closest to the query.

    ``budget`` is the most tokens the kept sentences may hold together,
    counted with ``tokenizer`` (a :class:`~rankkit.Generator` or an LLM
    backend: the generator's own tokenizer) or, without one, in words.
    ``query_weight`` mixes query similarity into the LexRank centrality
    (0: pure LexRank, 1: pure query similarity). The returned run holds the
    documents that kept a sentence (rank order and scores unchanged); their
    compressed texts are in ``run.extras["compressed"]`` (``{qid: {docid: text}}``),
    which the Generator reads instead of the corpus, and the kept
    :class:`Sentence` rows in ``run.extras["sentences"]``. After a call,
    :attr:`stats` has tokens before/after, kept sentences and cut sentences.
    """

    name = "compressor"

    def __init__(self, corpus: Any, budget: int = 256, k: int | None = None, tokenizer: Any = None,
                 query_weight: float = 0.5, threshold: float = 0.1, damping: float = 0.85):
        from .generator import text_source

        _check_budget(budget)
        if k is not None and (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1):
            raise ConfigError(f"Compressor k must be an integer >= 1 or None, got {k!r}")
        if not 0.0 <= float(query_weight) <= 1.0:
            raise ConfigError(f"query_weight must be in [0, 1], got {query_weight!r}")
        if not 0.0 < float(damping) < 1.0:
            raise ConfigError(f"damping must be in (0, 1), got {damping!r}")
        if corpus is None:
            raise ConfigError("the Compressor needs corpus= to read the passages of the incoming run")
        self.corpus = text_source(corpus)
        self.budget, self.k = int(budget), None if k is None else int(k)
        self.query_weight, self.threshold, self.damping = float(query_weight), float(threshold), float(damping)
        self.counter = TokenCounter(tokenizer)
        self.stats: dict[str, Any] = {}

    def transform(self, queries: Queries, run: Run | None) -> Run:
        qids = list(queries)
        base = (run if run is not None else Run(name="no-retrieval")).with_queries(qids)
        docs = [[str(d) for d in base.docids(q)[: self.k].tolist()] for q in qids]
        passages = [[(d, self._text(d)) for d in ds] for ds in docs]
        kept, cuts = _compress_many([queries[q] for q in qids], passages, self.budget, self.counter,
                                    self.query_weight, self.threshold, self.damping)
        rankings, compressed, sentences = {}, {}, {}
        for q, ds, sents in zip(qids, docs, kept):
            by_doc: dict[str, list[str]] = {}
            for s in sents:
                by_doc.setdefault(s.docid, []).append(s.text)
            dids, scores = base.docids(q)[: len(ds)], base.scores(q)[: len(ds)]
            mask = np.array([d in by_doc for d in dids.tolist()], dtype=bool)
            rankings[q] = (dids[mask], scores[mask])
            compressed[q] = {d: " ".join(by_doc[d]) for d in dids[mask].tolist()}
            sentences[q] = sents
        out = Run.from_sorted(rankings, name=f"{base.name or 'run'}+compressed")
        out.extras[COMPRESSED], out.extras[SENTENCES] = compressed, sentences
        tokens_in = self.counter.count([t for ps in passages for _, t in ps]) if any(passages) else []
        self.stats = {"queries": len(qids), "no_passages": sum(1 for p in passages if not p),
                      "tokens_in": int(sum(tokens_in)),
                      "tokens_out": int(sum(s.tokens for ss in kept for s in ss)),
                      "sentences_kept": sum(len(ss) for ss in kept), "cut_sentences": int(sum(cuts)),
                      "unit": self.counter.name}
        if self.stats["cut_sentences"]:
            log.warning("compressor: for %d queries even the best sentence exceeded the budget of %d; "
                        "it was cut to fit", self.stats["cut_sentences"], self.budget)
        return out

    def _text(self, docid: str) -> str:
        from ..errors import RankkitError
        from ..types import Corpus

        try:
            return self.corpus[docid] if isinstance(self.corpus, Corpus) else str(self.corpus(docid))
        except KeyError:
            raise RankkitError(f"document {docid!r} of the incoming run is not in the Compressor's corpus") from None

    def params(self) -> dict[str, Any]:
        return {"budget": self.budget, "k": self.k, "unit": self.counter.name,
                "query_weight": self.query_weight}


__all__ = ["Compressor", "Sentence", "compress", "split_sentences", "score_sentences", "lexrank", "select",
           "TokenCounter", "COMPRESSED", "SENTENCES"]
