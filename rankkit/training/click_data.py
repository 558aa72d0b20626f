"""Click logs as training data for text rerankers: the ``clicks`` data source.

A :class:`ClickList` is what the click objectives (``click_objectives.py``)
consume: a query text, the displayed documents' texts in display order, their
clicks (0/1 for one session, click-through rates for an aggregated group), the
1-based display ranks they were shown at and a list weight (the sessions the
list stands for). Ranks travel with the documents because a document missing
from the corpus is dropped from its list while the others keep their ranks
(the propensity of rank ``k`` belongs to rank ``k``, not to the ``k``-th kept
document).

Config block::

    data:
      - source: clicks
        path: clicks.jsonl           # a click log (rankkit.ultr.clicklog format: JSONL or Parquet)
        corpus: ../beir/scifact      # document texts: a BEIR folder, corpus.jsonl, TSV or TREC file
        queries: ../beir/scifact     # query texts for sessions whose log line has no "query" (optional)
        aggregate: true              # one list per (query, displayed list), weighted by its session count
        max_rank: 10                 # keep ranks 1..max_rank (optional)

Nothing is dropped silently: lists without any click (no signal for the
listwise click losses), sessions without query text, documents missing from
the corpus and results past ``max_rank`` are counted in the source's
``skipped`` summary (and logged); malformed log lines are
:class:`~rankkit.errors.DataFormatError` s naming file and line (the
click-log reader's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from .data import DataReport
from .sources import register_data_source

log = logging.getLogger(__name__)


@dataclass
class ClickList:
    """One training list from a click log: documents in display order with clicks and ranks."""

    query: str
    docs: list[str]
    clicks: list[float]
    positions: list[int]
    weight: float = 1.0
    qid: str | None = None

    def __post_init__(self) -> None:
        n = len(self.docs)
        if len(self.clicks) != n or len(self.positions) != n:
            raise RankkitError(f"click list {self.qid!r}: {n} documents, {len(self.clicks)} clicks, "
                               f"{len(self.positions)} positions")
        if any(p < 1 for p in self.positions) or any(b <= a for a, b in zip(self.positions, self.positions[1:])):
            raise RankkitError(f"click list {self.qid!r}: positions must be increasing 1-based ranks, "
                               f"got {self.positions}")
        if not np.isfinite(self.weight) or self.weight <= 0:
            raise RankkitError(f"click list {self.qid!r}: weight must be a positive number, got {self.weight}")

    @property
    def labels(self) -> list[float]:
        """Objectives for labelled groups (``listwise``) read this: say what to use instead."""
        raise ConfigError("a click-log source (source: clicks) trains with a click objective: "
                          "loss: naive, ips or dla")

    def head(self, max_rank: int | None) -> ClickList:
        """The documents shown at ranks ``1..max_rank`` (all when None)."""
        if not max_rank or self.positions[-1] <= max_rank:
            return self
        n = sum(p <= max_rank for p in self.positions)
        return ClickList(self.query, self.docs[:n], self.clicks[:n], self.positions[:n], self.weight, self.qid)


def click_lists(log: Any, corpus: Any, queries: Any = None, aggregate: bool = True,
                max_rank: int | None = None) -> tuple[list[ClickList], DataReport]:
    """Training lists from a :class:`~rankkit.ultr.ClickLog` and the document texts.

    ``corpus`` maps document ids to texts (a :class:`~rankkit.types.Corpus` or a
    dict); ``queries`` (optional) maps query ids to texts for sessions whose log
    carries none. With ``aggregate`` sessions that showed the same list for the
    same query become one list of click-through rates weighted by the session
    count: exact for the losses linear in the clicks (listwise softmax, DLA,
    pointwise IPS), and much cheaper. See the module docstring for what is skipped.
    """
    if max_rank is not None and int(max_rank) < 1:
        raise ConfigError(f"max_rank must be >= 1, got {max_rank}")
    rep = DataReport()
    if aggregate:
        agg = log.aggregate()
        qids, docids, clicks = agg.qids, agg.docids, agg.ctr
        lengths, weights = agg.lengths, agg.counts.astype(np.float64)
    else:
        qids, docids, clicks = log.qids, log.docids, log.clicks.astype(np.float64)
        lengths, weights = log.lengths, np.ones(len(log))
    texts = dict(getattr(log, "queries", {}) or {})
    out: list[ClickList] = []
    for i in range(len(qids)):
        qid = str(qids[i])
        n = int(lengths[i])
        if max_rank is not None and n > max_rank:
            rep.skip(f"results past rank {max_rank} dropped", n - int(max_rank))
            n = int(max_rank)
        query = texts.get(qid)
        if query is None and queries is not None and qid in queries:
            query = queries[qid]
        if query is None:
            rep.skip("lists without query text (no 'query' in the log, qid not in queries)")
            continue
        docs, cl, pos = [], [], []
        for k in range(n):
            d = str(docids[i, k])
            if d not in corpus:
                rep.skip("displayed documents missing from the corpus")
                continue
            docs.append(corpus[d])
            cl.append(float(clicks[i, k]))
            pos.append(k + 1)
        if not docs:
            rep.skip("lists with no document in the corpus")
            continue
        if not any(c > 0 for c in cl):
            rep.skip("lists without clicks")
            continue
        out.append(ClickList(str(query), docs, cl, pos, float(weights[i]), qid))
    rep.groups = len(out)
    return out, rep


def _clicks_source(src: dict[str, Any], cfg: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The ``clicks`` data source (see the module docstring)."""
    import rankkit as rk

    from ..ultr.clicklog import read_click_log
    from .sources import config_path

    for key in ("path", "corpus"):
        if not src.get(key):
            raise ConfigError(f"data source 'clicks' needs {key!r}")
    path = config_path(cfg, src["path"])
    clog = read_click_log(path)
    corpus = rk.datasets.read_corpus(config_path(cfg, src["corpus"]))
    queries = rk.datasets.read_queries(config_path(cfg, src["queries"])) if src.get("queries") else None
    max_rank = src.get("max_rank")
    lists, rep = click_lists(clog, corpus, queries, aggregate=bool(src.get("aggregate", True)),
                             max_rank=int(max_rank) if max_rank is not None else None)
    rep.warn(str(path))
    if not lists:
        raise ConfigError(f"{path}: no usable click list ({', '.join(f'{n} {w}' for w, n in rep.skipped.items())})")
    return lists, {"source": "clicks", "path": str(src["path"]), "sessions": len(clog), "lists": len(lists),
                   "aggregate": bool(src.get("aggregate", True)), "skipped": rep.skipped}


#: the keys of a ``source: clicks`` block (registered on import; ``sources.py`` imports this module)
CLICK_SOURCE_KEYS = frozenset({"path", "corpus", "queries", "aggregate", "max_rank"})


register_data_source("clicks", _clicks_source, CLICK_SOURCE_KEYS,
                     "a click log (JSONL/Parquet) with the corpus its documents come from")
