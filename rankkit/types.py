"""The data model every stage shares: Corpus, Queries, Qrels, Run, Dataset, Result.

Columnar and small on purpose: a ``Run`` keeps, per query, a docid array and a
score array sorted by descending score, so rerankers can flatten all candidate
pairs of all queries into one batch (``Run.pairs``) and rebuild a run from the
flat scores (``Run.from_flat``) without per-query Python work around a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .errors import DataFormatError, RankkitError


# --------------------------------------------------------------------------- corpus
class Corpus:
    """Documents as parallel columns (ids, texts, optional titles).

    ``corpus[docid]`` returns the document's ranking text (title and body joined
    by a space, as BEIR models are fed) in O(1); ``corpus.body(docid)`` and
    ``corpus.title(docid)`` give the parts.
    """

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        titles: Sequence[str] | None = None,
        *,
        source: str | None = None,
    ):
        ids = [str(i) for i in ids]
        if len(ids) != len(texts) or (titles is not None and len(titles) != len(ids)):
            raise RankkitError("Corpus columns differ in length (ids, texts, titles)")
        index: dict[str, int] = {}
        for pos, docid in enumerate(ids):
            if docid in index:
                where = f"{source}: " if source else ""
                raise DataFormatError(
                    f"{where}duplicate document id {docid!r} (entries {index[docid] + 1} and {pos + 1})"
                )
            index[docid] = pos
        self.ids: list[str] = ids
        self.texts: list[str] = [t if t is not None else "" for t in texts]
        self.titles: list[str] | None = (
            [t if t is not None else "" for t in titles] if titles is not None else None
        )
        if self.titles is not None and not any(self.titles):
            self.titles = None
        self.source = source
        self._index = index
        self._contents: list[str] | None = None

    # mapping-like access ------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, docid: object) -> bool:
        return docid in self._index

    def __getitem__(self, docid: str) -> str:
        try:
            return self.contents[self._index[docid]]
        except KeyError:
            raise KeyError(f"document {docid!r} is not in the corpus") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def position(self, docid: str) -> int:
        """Row of ``docid`` in the columns (O(1))."""
        return self._index[docid]

    def positions(self, docids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self._index[d] for d in docids), dtype=np.int64)

    def body(self, docid: str) -> str:
        return self.texts[self._index[docid]]

    def title(self, docid: str) -> str:
        return self.titles[self._index[docid]] if self.titles is not None else ""

    @property
    def contents(self) -> list[str]:
        """Ranking text of every document: ``title + " " + text`` when titled."""
        if self._contents is None:
            if self.titles is None:
                self._contents = self.texts
            else:
                self._contents = [
                    f"{ti} {tx}".strip() if ti else tx for ti, tx in zip(self.titles, self.texts)
                ]
        return self._contents

    def fingerprint(self) -> str:
        """A stable hash of ids and texts, stored in index manifests to catch mismatches."""
        import hashlib

        h = hashlib.sha256()
        for docid, text in zip(self.ids, self.contents):
            h.update(docid.encode("utf-8"))
            h.update(b"\x00")
            h.update(text.encode("utf-8"))
            h.update(b"\x01")
        return h.hexdigest()[:16]

    def subset(self, docids: Iterable[str]) -> Corpus:
        rows = [self._index[d] for d in docids]
        return Corpus(
            [self.ids[r] for r in rows],
            [self.texts[r] for r in rows],
            [self.titles[r] for r in rows] if self.titles is not None else None,
            source=self.source,
        )

    # constructors ---------------------------------------------------------------
    @classmethod
    def from_mapping(cls, docs: Mapping[str, Any]) -> Corpus:
        """From ``{docid: text}`` or ``{docid: {"title": ..., "text": ...}}``."""
        ids, texts, titles = [], [], []
        for docid, value in docs.items():
            ids.append(str(docid))
            if isinstance(value, str):
                texts.append(value)
                titles.append("")
            elif isinstance(value, Mapping):
                texts.append(str(value.get("text", "")))
                titles.append(str(value.get("title", "") or ""))
            else:
                raise RankkitError(
                    f"document {docid!r}: expected a string or a mapping with 'text', got {type(value).__name__}"
                )
        return cls(ids, texts, titles)

    @classmethod
    def from_hf(cls, dataset: Any, id_field: str = "_id", text_field: str = "text",
                title_field: str | None = "title") -> Corpus:
        """From a ``datasets.Dataset`` (or any object with column access)."""
        columns = set(dataset.column_names)
        for name in (id_field, text_field):
            if name not in columns:
                raise RankkitError(
                    f"dataset has no column {name!r} (columns: {sorted(columns)}); "
                    "pass id_field=/text_field= to name them"
                )
        titles = dataset[title_field] if title_field and title_field in columns else None
        return cls(dataset[id_field], dataset[text_field], titles)

    @classmethod
    def coerce(cls, obj: Any) -> Corpus:
        """Accept a Corpus, a mapping, or a ``datasets.Dataset``."""
        if isinstance(obj, Corpus):
            return obj
        if isinstance(obj, Mapping):
            return cls.from_mapping(obj)
        if hasattr(obj, "column_names"):
            return cls.from_hf(obj)
        raise RankkitError(f"cannot build a Corpus from {type(obj).__name__}")

    def __repr__(self) -> str:
        return f"Corpus({len(self)} documents{', titled' if self.titles else ''})"


# -------------------------------------------------------------------------- queries
class Queries(Mapping[str, str]):
    """Ordered ``qid -> text``. Builds from a mapping, a list of strings or one string."""

    def __init__(self, queries: Mapping[str, str] | None = None):
        self._q: dict[str, str] = {str(k): str(v) for k, v in (queries or {}).items()}

    def __getitem__(self, qid: str) -> str:
        return self._q[qid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._q)

    def __len__(self) -> int:
        return len(self._q)

    @property
    def ids(self) -> list[str]:
        return list(self._q)

    @property
    def texts(self) -> list[str]:
        return list(self._q.values())

    def subset(self, qids: Iterable[str]) -> Queries:
        return Queries({q: self._q[q] for q in qids})

    def head(self, n: int) -> Queries:
        return Queries(dict(list(self._q.items())[:n]))

    @classmethod
    def coerce(cls, obj: Any) -> Queries:
        if isinstance(obj, Queries):
            return obj
        if isinstance(obj, str):
            return cls({"q1": obj})
        if isinstance(obj, Mapping):
            return cls(obj)
        if isinstance(obj, Sequence):
            return cls({f"q{i + 1}": str(t) for i, t in enumerate(obj)})
        raise RankkitError(f"cannot build Queries from {type(obj).__name__}")

    def check_not_empty(self, source: str | None = None) -> Queries:
        """Raise on queries whose text is blank (they would silently retrieve nothing)."""
        for qid, text in self._q.items():
            if not text.strip():
                where = f"{source}: " if source else ""
                raise DataFormatError(f"{where}query {qid!r} is empty")
        return self

    def __repr__(self) -> str:
        return f"Queries({len(self)})"


# ---------------------------------------------------------------------------- qrels
class Qrels(Mapping[str, dict[str, int]]):
    """Relevance judgements ``qid -> {docid: grade}``."""

    def __init__(self, qrels: Mapping[str, Mapping[str, int]] | None = None):
        self._r: dict[str, dict[str, int]] = {
            str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in (qrels or {}).items()
        }

    def __getitem__(self, qid: str) -> dict[str, int]:
        return self._r[qid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._r)

    def __len__(self) -> int:
        return len(self._r)

    def relevant(self, qid: str, min_grade: int = 1) -> set[str]:
        return {d for d, g in self._r.get(qid, {}).items() if g >= min_grade}

    def subset(self, qids: Iterable[str]) -> Qrels:
        return Qrels({q: self._r[q] for q in qids if q in self._r})

    def __iter_qrels__(self) -> Iterator[Any]:
        import ir_measures

        for qid, docs in self._r.items():
            for docid, grade in docs.items():
                yield ir_measures.Qrel(qid, docid, grade)

    def to_ir_measures(self) -> list[Any]:
        return list(self.__iter_qrels__())

    @classmethod
    def coerce(cls, obj: Any) -> Qrels:
        return obj if isinstance(obj, Qrels) else cls(obj)

    def __repr__(self) -> str:
        return f"Qrels({len(self)} queries, {sum(len(v) for v in self._r.values())} judgements)"


# ------------------------------------------------------------------------------ run
class ScoredDoc(NamedTuple):
    """Same fields as ``ir_measures.ScoredDoc``; ir-measures accepts either."""

    query_id: str
    doc_id: str
    score: float


class Run:
    """Rankings ``qid -> [(docid, score), ...]`` kept as arrays, best first.

    A query with no hits keeps an empty ranking: a Run never drops a query, so
    evaluation counts it as a miss instead of silently skipping it. Iterating
    a Run yields ``ScoredDoc`` rows, so it can be passed to ir-measures directly.
    """

    def __init__(self, rankings: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 name: str | None = None):
        self._r: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.name = name
        self.extras: dict[str, Any] = {}   # per-run details a stage attaches (e.g. Rank-R1's reasoning)
        for qid, (docids, scores) in (rankings or {}).items():
            self._set(str(qid), docids, scores)

    def _set(self, qid: str, docids: Any, scores: Any, presorted: bool = False) -> None:
        d = np.asarray(docids, dtype=object)
        s = np.asarray(scores, dtype=np.float64)
        if d.shape != s.shape:
            raise RankkitError(f"query {qid!r}: {len(d)} docids but {len(s)} scores")
        if not presorted and len(s) > 1:
            order = np.argsort(-s, kind="stable")
            d, s = d[order], s[order]
        self._r[qid] = (d, s)

    # construction ------------------------------------------------------------
    @classmethod
    def from_dict(cls, run: Mapping[str, Mapping[str, float]], name: str | None = None) -> Run:
        """From pytrec_eval-style ``{qid: {docid: score}}``."""
        out = cls(name=name)
        for qid, docs in run.items():
            out._set(str(qid), list(docs.keys()), list(docs.values()))
        return out

    @classmethod
    def from_sorted(cls, rankings: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    name: str | None = None) -> Run:
        """From ``{qid: (docids, scores)}`` arrays already ordered best first (no re-sort).

        The fast public constructor for stages that rank themselves (retrievers,
        fusion): arrays are kept as given after a shape check.
        """
        out = cls(name=name)
        for qid, (docids, scores) in rankings.items():
            out._set(str(qid), docids, scores, presorted=True)
        return out

    @classmethod
    def from_lists(cls, qids: Sequence[str], docids: Sequence[Sequence[str]],
                   scores: Sequence[Sequence[float]], name: str | None = None,
                   presorted: bool = False) -> Run:
        """From per-query lists, e.g. the ``(docs, scores)`` matrices a retriever returns."""
        out = cls(name=name)
        for qid, d, s in zip(qids, docids, scores):
            out._set(str(qid), d, s, presorted=presorted)
        return out

    @classmethod
    def from_flat(cls, qids: Sequence[str], qidx: np.ndarray, docids: np.ndarray,
                  scores: np.ndarray, name: str | None = None) -> Run:
        """Inverse of :meth:`pairs`: regroup flat (query index, docid, score) rows.

        ``qids`` lists every query (so queries without candidates stay, empty).
        """
        qidx = np.asarray(qidx, dtype=np.int64)
        docids = np.asarray(docids, dtype=object)
        scores = np.asarray(scores, dtype=np.float64)
        order = np.lexsort((-scores, qidx))
        qidx, docids, scores = qidx[order], docids[order], scores[order]
        bounds = np.searchsorted(qidx, np.arange(len(qids) + 1))
        out = cls(name=name)
        for i, qid in enumerate(qids):
            a, b = bounds[i], bounds[i + 1]
            out._r[str(qid)] = (docids[a:b], scores[a:b])
        return out

    def pairs(self, queries: Mapping[str, str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Flatten to ``(qids, qidx, docids)``: every candidate as one row.

        With ``queries`` given, the qid order follows ``queries`` and queries
        absent from the run get no rows (they stay as empty rankings).
        """
        qids = list(queries) if queries is not None else list(self._r)
        empty = np.empty(0, dtype=object)
        parts = [self._r[q][0] if q in self._r else empty for q in qids]
        lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        qidx = np.repeat(np.arange(len(qids)), lengths)
        docids = np.concatenate(parts) if parts else empty
        return qids, qidx, docids.astype(object)

    # mapping-like access -----------------------------------------------------
    def __getitem__(self, qid: str) -> list[tuple[str, float]]:
        d, s = self._r[qid]
        return list(zip(d.tolist(), s.tolist()))

    def docids(self, qid: str) -> np.ndarray:
        return self._r[qid][0]

    def scores(self, qid: str) -> np.ndarray:
        return self._r[qid][1]

    def arrays(self, qid: str) -> tuple[np.ndarray, np.ndarray]:
        return self._r[qid]

    def __contains__(self, qid: object) -> bool:
        return qid in self._r

    def __len__(self) -> int:
        return len(self._r)

    @property
    def qids(self) -> list[str]:
        return list(self._r)

    def keys(self) -> list[str]:
        return list(self._r)

    def items(self) -> Iterator[tuple[str, list[tuple[str, float]]]]:
        for qid in self._r:
            yield qid, self[qid]

    def __iter__(self) -> Iterator[ScoredDoc]:
        for qid, (d, s) in self._r.items():
            for docid, score in zip(d.tolist(), s.tolist()):
                yield ScoredDoc(qid, docid, score)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Run) or list(self._r) != list(other._r):
            return False
        return all(
            np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])
            for a, b in zip(self._r.values(), other._r.values())
        )

    def num_hits(self) -> int:
        return sum(len(d) for d, _ in self._r.values())

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {q: dict(zip(d.tolist(), s.tolist())) for q, (d, s) in self._r.items()}

    # transformations ---------------------------------------------------------
    def top(self, k: int) -> Run:
        """Keep the best ``k`` per query (queries with fewer keep all)."""
        if k < 0:
            raise RankkitError(f"cutoff must be >= 0, got {k}")
        out = Run(name=self.name)
        out._r = {q: (d[:k], s[:k]) for q, (d, s) in self._r.items()}
        return out

    def subset(self, qids: Iterable[str]) -> Run:
        out = Run(name=self.name)
        out._r = {q: self._r[q] for q in qids if q in self._r}
        return out

    def with_queries(self, qids: Iterable[str]) -> Run:
        """Same run restricted/extended to ``qids``; missing queries become empty."""
        empty = (np.empty(0, dtype=object), np.empty(0, dtype=np.float64))
        out = Run(name=self.name)
        out._r = {q: self._r.get(q, empty) for q in qids}
        return out

    # TREC files --------------------------------------------------------------
    @classmethod
    def read_trec(cls, path: Any, name: str | None = None) -> Run:
        """Read a 6-column TREC run (``qid Q0 docid rank score tag``)."""
        from .io import open_text

        per_q: dict[str, tuple[list[str], list[float]]] = {}
        with open_text(path, "run file") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                cols = line.split()
                if len(cols) != 6:
                    raise DataFormatError(
                        f"expected 6 columns (qid Q0 docid rank score tag), found {len(cols)}",
                        path, lineno)
                try:
                    score = float(cols[4])
                except ValueError:
                    raise DataFormatError(f"score {cols[4]!r} is not a number", path, lineno) from None
                d, s = per_q.setdefault(cols[0], ([], []))
                d.append(cols[2])
                s.append(score)
        from pathlib import Path

        return cls({q: (d, s) for q, (d, s) in per_q.items()},
                   name=name or Path(str(path)).name)

    def write_trec(self, path: Any, tag: str | None = None) -> None:
        """Write the run atomically (temporary file, then rename).

        Scores are written at full precision (shortest exact form, ``repr``):
        rounding to 6 decimals turned near-ties into ties, which the evaluator
        breaks by docid, so a run read back from a cache scored differently
        from the run that wrote it.
        """
        from .io import atomic_path

        tag = (tag or self.name or "rankkit").replace(" ", "_")
        with atomic_path(path) as fh:
            for qid, (d, s) in self._r.items():
                fh.writelines(
                    f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n"
                    for rank, (docid, score) in enumerate(zip(d.tolist(), s.tolist()), 1)
                )

    def __repr__(self) -> str:
        name = f"{self.name!r}, " if self.name else ""
        return f"Run({name}{len(self)} queries, {self.num_hits()} hits)"


# -------------------------------------------------------------------- dataset/result
@dataclass
class Dataset:
    """A test collection: the corpus, the queries and their judgements."""

    corpus: Corpus
    queries: Queries
    qrels: Qrels = field(default_factory=Qrels)
    name: str | None = None

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}: {self.corpus!r}, {self.queries!r}, {self.qrels!r})"


@dataclass
class Answer:
    """One generated answer with the passages it cites (mapped back to docids)."""

    qid: str
    text: str
    citations: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    prompt: str | None = None
    label: str | None = None
    label_scores: dict[str, float] | None = None
    error: str | None = None


@dataclass
class Result:
    """What a pipeline returns: the final run, answers if a generator ran, timings."""

    run: Run
    answers: dict[str, Answer] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        extra = f", {len(self.answers)} answers" if self.answers is not None else ""
        return f"Result({self.run!r}{extra})"


def as_run(obj: Run | Result) -> Run:
    """The Run inside ``obj`` (a Run or a Result)."""
    if isinstance(obj, Result):
        return obj.run
    if isinstance(obj, Run):
        return obj
    raise RankkitError(f"expected a Run or Result, got {type(obj).__name__}")
