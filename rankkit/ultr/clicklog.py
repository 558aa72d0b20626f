"""The click-log format: one search session per record, in JSONL or Parquet.

A session is::

    {"qid": "q1", "query": "text (optional)",
     "docids": ["d3", "d7", "d1"],          # displayed, rank 1 first
     "clicks": [0, 1, 0],                   # or "clicked_positions": [2] (1-based)
     "dwell": [null, 12.5, null],           # optional, seconds (null = none)
     "display": {"height": [120, 80, 95]}}  # optional per-result display features

Parquet files hold the same fields as columns (``display`` as one list column
``display.<name>`` per feature). Bad input is a :class:`~rankkit.errors.DataFormatError`
naming the file and line (Parquet: row): malformed JSON, a clicked position past the
displayed list, ``clicks`` / ``dwell`` / display lists whose length differs from
``docids``, clicks other than 0/1.

Sessions without any click carry no signal for listwise losses; readers keep them
by default (pointwise losses use them as negatives) and drop them with
``drop_unclicked=True``, counting them in ``ClickLog.skipped["no_clicks"]``.

:func:`read_baidu_ultr` reads the raw Baidu-ULTR session files (Zou et al., 2022)
into the same :class:`ClickLog`; its layout is documented there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.formats import iter_tsv
from ..errors import ConfigError, DataFormatError
from ..io import PathLike, atomic_path, open_text, require_file

Columns = tuple[list[str], list[list[str]], list[list[int]], list[list[float] | None],
                list[dict[str, list[float]]], dict[str, str]]


def _new_columns() -> Columns:
    """Empty per-session columns (qids, docids, clicks, dwell, display, query texts) the readers fill."""
    return [], [], [], [], [], {}


@dataclass
class ClickLog:
    """Sessions as padded arrays: ``S`` sessions, up to ``L`` displayed results each.

    ``docids[s, k]`` is the result shown at rank ``k + 1`` of session ``s`` (``""``
    past ``lengths[s]``); ``clicks`` are 0/1; ``dwell`` (NaN = none) and each
    ``display[name]`` are ``[S, L]`` float arrays when present.
    """

    qids: np.ndarray
    docids: np.ndarray
    clicks: np.ndarray
    lengths: np.ndarray
    queries: dict[str, str] = field(default_factory=dict)
    dwell: np.ndarray | None = None
    display: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        self.qids = np.asarray(self.qids, dtype=object)
        self.docids = np.asarray(self.docids, dtype=object)
        self.clicks = np.asarray(self.clicks, dtype=np.int8)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if self.docids.ndim != 2 or self.clicks.shape != self.docids.shape or \
                len(self.qids) != len(self.docids) or len(self.lengths) != len(self.qids):
            raise ConfigError("ClickLog arrays disagree in shape (qids [S], docids/clicks [S, L], lengths [S])")

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.qids)

    @property
    def width(self) -> int:
        """``L``: the longest displayed list."""
        return int(self.docids.shape[1])

    @property
    def mask(self) -> np.ndarray:
        """``[S, L]`` True where a result was displayed."""
        return np.arange(self.width)[None, :] < self.lengths[:, None]

    def ctr_by_position(self) -> np.ndarray:
        """Click-through rate at each rank over the sessions that displayed it."""
        shown = self.mask.sum(0)
        return np.where(shown > 0, self.clicks.sum(0) / np.maximum(shown, 1), 0.0)

    def subset(self, index: Any) -> ClickLog:
        """Sessions ``index`` (a boolean mask or integer indices) as a new log."""
        return ClickLog(self.qids[index], self.docids[index], self.clicks[index], self.lengths[index],
                        dict(self.queries), None if self.dwell is None else self.dwell[index],
                        {k: v[index] for k, v in self.display.items()}, dict(self.skipped), self.source)

    def drop_unclicked(self) -> ClickLog:
        """Sessions with at least one click; the dropped count adds to ``skipped['no_clicks']``."""
        keep = self.clicks.sum(1) > 0
        out = self.subset(keep)
        out.skipped["no_clicks"] = out.skipped.get("no_clicks", 0) + int((~keep).sum())
        return out

    def aggregate(self) -> Aggregated:
        """Group sessions that showed the same list for the same query.

        Returns the mean clicks of each group and its session count. Losses that
        are linear in the clicks (softmax cross-entropy, unbiased pointwise BCE)
        give exactly the same total over the groups, weighted by their counts, as
        over the sessions, at a fraction of the cost.
        """
        keys = np.array([q + "\x00" + "\x00".join(d[:n]) for q, d, n in
                         zip(self.qids.tolist(), self.docids.tolist(), self.lengths.tolist())], dtype=object)
        uniq, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                                 return_counts=True)
        sums = np.zeros((len(uniq), self.width), dtype=np.float64)
        np.add.at(sums, inverse, self.clicks.astype(np.float64))
        return Aggregated(qids=self.qids[first], docids=self.docids[first], ctr=sums / counts[:, None],
                          counts=counts.astype(np.int64), lengths=self.lengths[first])

    # ------------------------------------------------------------ conversion
    def sessions(self) -> Iterator[dict[str, Any]]:
        """Each session as a JSON-ready dict (the on-disk record)."""
        for s in range(len(self)):
            n = int(self.lengths[s])
            qid = str(self.qids[s])
            rec: dict[str, Any] = {"qid": qid}
            if qid in self.queries:
                rec["query"] = self.queries[qid]
            rec["docids"] = [str(d) for d in self.docids[s, :n]]
            rec["clicks"] = [int(c) for c in self.clicks[s, :n]]
            if self.dwell is not None:
                rec["dwell"] = [None if math.isnan(x) else float(x) for x in self.dwell[s, :n]]
            if self.display:
                rec["display"] = {k: [float(x) for x in v[s, :n]] for k, v in self.display.items()}
            yield rec

    @classmethod
    def from_sessions(cls, records: Iterable[Mapping[str, Any]], source: str | None = None,
                      drop_unclicked: bool = False, row_label: str = "line") -> ClickLog:
        """Validate session dicts (see the module docstring) into a ClickLog."""
        qids, docs, clicks, dwell, display, queries = _new_columns()
        skipped = 0
        for lineno, rec in _numbered(records):
            q, d, c, w, disp, text = _parse_session(rec, source, lineno, row_label)
            if drop_unclicked and not any(c):
                skipped += 1
                continue
            if text is not None:
                queries[q] = text
            qids.append(q)
            docs.append(d)
            clicks.append(c)
            dwell.append(w)
            display.append(disp)
        return _pack(qids, docs, clicks, dwell, display, queries, {"no_clicks": skipped} if drop_unclicked else {},
                     source)


@dataclass
class Aggregated:
    """Sessions grouped by (query, displayed list): mean clicks and session counts."""

    qids: np.ndarray
    docids: np.ndarray
    ctr: np.ndarray
    counts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.qids)

    @property
    def mask(self) -> np.ndarray:
        return np.arange(self.docids.shape[1])[None, :] < self.lengths[:, None]


# ---------------------------------------------------------------------- parsing
def _numbered(records: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    for i, rec in enumerate(records, 1):
        if isinstance(rec, tuple) and len(rec) == 2 and isinstance(rec[0], int):
            yield rec
        else:
            yield i, rec


def _parse_session(rec: Any, path: str | None, line: int, row_label: str
                   ) -> tuple[str, list[str], list[int], list[float] | None, dict[str, list[float]], str | None]:
    def bad(problem: str) -> DataFormatError:
        err = DataFormatError(problem, path, line)
        if row_label != "line" and path is not None:
            err.args = (f"{path}, {row_label} {line}: {problem}",)
        return err

    if not isinstance(rec, Mapping):
        raise bad(f"a session must be a JSON object, got {type(rec).__name__}")
    if rec.get("qid") in (None, ""):
        raise bad("session has no 'qid'")
    docids = rec.get("docids")
    if not isinstance(docids, list) or not docids:
        raise bad("'docids' must be a non-empty list of the displayed document ids")
    n = len(docids)
    has_clicks = rec.get("clicks") is not None
    if has_clicks:
        clicks = rec["clicks"]
        if not isinstance(clicks, list):
            raise bad("'clicks' must be a list of 0/1")
        if len(clicks) != n:
            raise bad(f"'clicks' has {len(clicks)} entries but 'docids' has {n}")
        if any(c not in (0, 1) for c in clicks):
            raise bad(f"'clicks' must be 0 or 1, got {sorted({c for c in clicks if c not in (0, 1)}, key=str)}")
        c = [int(x) for x in clicks]
    elif rec.get("clicked_positions") is not None:
        pos = rec["clicked_positions"]
        if not isinstance(pos, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos):
            raise bad("'clicked_positions' must be a list of 1-based integer ranks")
        c = [0] * n
        for p in pos:
            if p < 1 or p > n:
                raise bad(f"clicked position {p} is past the displayed list (ranks 1..{n})")
            c[p - 1] = 1
    else:
        raise bad("session has neither 'clicks' nor 'clicked_positions'")
    dwell = rec.get("dwell")
    w: list[float] | None = None
    if dwell is not None:
        if not isinstance(dwell, list) or len(dwell) != n:
            raise bad(f"'dwell' must list one value (or null) per displayed document ({n})")
        try:
            w = [math.nan if x is None else float(x) for x in dwell]
        except (TypeError, ValueError):
            raise bad("'dwell' values must be numbers or null") from None
    disp: dict[str, list[float]] = {}
    display = rec.get("display") or {}
    if not isinstance(display, Mapping):
        raise bad("'display' must map a feature name to one value per displayed document")
    for name, values in display.items():
        if not isinstance(values, list) or len(values) != n:
            raise bad(f"display feature {name!r} must have {n} values, one per displayed document")
        try:
            disp[str(name)] = [math.nan if x is None else float(x) for x in values]
        except (TypeError, ValueError):
            raise bad(f"display feature {name!r} must hold numbers") from None
    text = rec.get("query")
    return str(rec["qid"]), [str(d) for d in docids], c, w, disp, None if text is None else str(text)


def _pack(qids: list[str], docs: list[list[str]], clicks: list[list[int]], dwell: list[list[float] | None],
          display: list[dict[str, list[float]]], queries: dict[str, str], skipped: dict[str, int],
          source: str | None) -> ClickLog:
    s = len(qids)
    width = max((len(d) for d in docs), default=0)
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=s)
    D = np.full((s, width), "", dtype=object)
    C = np.zeros((s, width), dtype=np.int8)
    for i, (d, c) in enumerate(zip(docs, clicks)):
        D[i, :len(d)] = d
        C[i, :len(c)] = c
    W = None
    if any(w is not None for w in dwell):
        W = np.full((s, width), np.nan)
        for i, w in enumerate(dwell):
            if w is not None:
                W[i, :len(w)] = w
    names = sorted({k for d in display for k in d})
    disp = {}
    for name in names:
        a = np.full((s, width), np.nan)
        for i, d in enumerate(display):
            if name in d:
                a[i, :len(d[name])] = d[name]
        disp[name] = a
    return ClickLog(np.asarray(qids, dtype=object), D, C, lengths, queries, W, disp, skipped, source)


# ---------------------------------------------------------------- read / write
def log_format(path: PathLike) -> str:
    """``jsonl`` or ``parquet`` from a click log's file name (anything else is a ConfigError)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ConfigError(f"click log {path}: unknown format (use .jsonl, .jsonl.gz or .parquet)")


def read_click_log(path: PathLike, drop_unclicked: bool = False) -> ClickLog:
    """Read a click log (JSONL or Parquet, chosen by the file name)."""
    p = require_file(path, "click log")
    if log_format(p) == "parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as e:  # pyarrow raises several types for a broken file
            raise DataFormatError(f"not a readable Parquet file ({e})", p) from None
        recs = (_unflatten_display(r) for r in rows)
        return ClickLog.from_sessions(recs, str(p), drop_unclicked, row_label="row")

    def lines() -> Iterator[tuple[int, Any]]:
        with open_text(p, "click log") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataFormatError(f"malformed JSON ({e.msg} at column {e.colno})", p, lineno) from None

    return ClickLog.from_sessions(lines(), str(p), drop_unclicked)


def _unflatten_display(row: dict[str, Any]) -> dict[str, Any]:
    disp = {k[len("display."):]: row.pop(k) for k in [k for k in row if k.startswith("display.")]}
    disp = {k: v for k, v in disp.items() if v is not None}
    if disp:
        row["display"] = disp
    return row


def write_click_log(log: ClickLog, path: PathLike) -> Path:
    """Write ``log`` as JSONL or Parquet (by file name), atomically."""
    p = Path(path)
    if log_format(p) == "jsonl":
        if p.name.endswith(".gz"):
            raise ConfigError("writing gzipped click logs is not supported; write .jsonl and compress it")
        with atomic_path(p) as fh:
            for rec in log.sessions():
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return p
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = list(log.sessions())
    cols: dict[str, Any] = {
        "qid": pa.array([r["qid"] for r in recs], pa.string()),
        "query": pa.array([r.get("query") for r in recs], pa.string()),
        "docids": pa.array([r["docids"] for r in recs], pa.list_(pa.string())),
        "clicks": pa.array([r["clicks"] for r in recs], pa.list_(pa.int8())),
    }
    if log.dwell is not None:
        cols["dwell"] = pa.array([r["dwell"] for r in recs], pa.list_(pa.float64()))
    for name in log.display:
        cols[f"display.{name}"] = pa.array([r["display"][name] for r in recs], pa.list_(pa.float64()))
    with atomic_path(p, "wb") as fh:
        pq.write_table(pa.table(cols), fh)
    return p


# --------------------------------------------------------------------- Baidu-ULTR
#: Baidu-ULTR session-file columns rankkit keeps (0-based index in a document line).
#: Layout from the dataset's README (github.com/ChuXiaokai/baidu_ultr_dataset): a query
#: line ``qid<TAB>query<TAB>query reformulation`` starts a session; each following
#: document line is ``pos, url_md5, title, abstract, multimedia type, click, -, -, skip,
#: SERP height, displayed time, displayed time middle, first click, displayed count,
#: SERP's max show height, slipoff count after click, dwelling time, displayed time top,
#: SERP to top, displayed count top, displayed count bottom, slipoff count, -, final
#: click, displayed time bottom, click count, displayed count, -, last click, reverse
#: display count, displayed count middle, -`` (tab-separated; token ids inside a text
#: field are joined by ``\x01``). Files may be gzipped.
BAIDU_DISPLAY_COLUMNS: dict[str, int] = {
    "media_type": 4, "skip": 8, "serp_height": 9, "displayed_time": 10, "displayed_time_middle": 11,
    "displayed_count": 13, "serp_max_show_height": 14, "slipoff_count_after_click": 15,
    "displayed_time_top": 17, "serp_to_top": 18, "displayed_time_bottom": 24,
}
BAIDU_DWELL_COLUMN = 16


def _baidu_float(cols: list[str], i: int) -> float:
    if i >= len(cols) or cols[i] in ("", "-"):
        return math.nan
    try:
        return float(cols[i])
    except ValueError:
        return math.nan


def read_baidu_ultr(path: PathLike, drop_unclicked: bool = False) -> ClickLog:
    """Read a Baidu-ULTR session file (layout in :data:`BAIDU_DISPLAY_COLUMNS`' comment).

    Document ids are the URL MD5s, the query text is the query's token ids joined by
    spaces, dwell is the dwelling-time column and the display features are those of
    :data:`BAIDU_DISPLAY_COLUMNS`. Results are ordered by their ``pos`` column; a
    position below 1, a repeated position, a click other than 0/1 or a document line
    before any query line is a DataFormatError with file and line. Sessions without
    displayed documents are skipped and counted in ``skipped['empty']``.
    """
    p = require_file(path, "Baidu-ULTR session file")
    qids, docs, clicks, dwell, display, queries = _new_columns()
    skipped = {"empty": 0, "no_clicks": 0} if drop_unclicked else {"empty": 0}
    current: tuple[str, str, list[tuple[int, str, int, float, dict[str, float]]]] | None = None

    def flush() -> None:
        if current is None:
            return
        qid, text, rows = current
        if not rows:
            skipped["empty"] += 1
            return
        rows.sort(key=lambda r: r[0])
        c = [r[2] for r in rows]
        if drop_unclicked and not any(c):
            skipped["no_clicks"] += 1
            return
        qids.append(qid)
        queries[qid] = text
        docs.append([r[1] for r in rows])
        clicks.append(c)
        dwell.append([r[3] for r in rows])
        display.append({k: [r[4][k] for r in rows] for k in BAIDU_DISPLAY_COLUMNS})

    with open_text(p, "Baidu-ULTR session file") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) in (2, 3):
                flush()
                current = (cols[0], cols[1].replace("\x01", " "), [])
                continue
            if len(cols) < 6:
                raise DataFormatError(f"expected a query line (3 fields) or a document line (>= 6 fields), "
                                      f"found {len(cols)} fields", p, lineno)
            if current is None:
                raise DataFormatError("document line before any query line", p, lineno)
            try:
                pos = int(cols[0])
            except ValueError:
                raise DataFormatError(f"position {cols[0]!r} is not an integer", p, lineno) from None
            if pos < 1:
                raise DataFormatError(f"position {pos} is below 1", p, lineno)
            if any(r[0] == pos for r in current[2]):
                raise DataFormatError(f"position {pos} appears twice in the session of query {current[0]!r}",
                                      p, lineno)
            if cols[5] not in ("0", "1"):
                raise DataFormatError(f"click must be 0 or 1, got {cols[5]!r}", p, lineno)
            feats = {k: _baidu_float(cols, i) for k, i in BAIDU_DISPLAY_COLUMNS.items()}
            current[2].append((pos, cols[1], int(cols[5]), _baidu_float(cols, BAIDU_DWELL_COLUMN), feats))
    flush()
    return _pack(qids, docs, clicks, dwell, display, queries, skipped, str(p))


@dataclass
class BaiduAnnotations:
    """Baidu-ULTR expert annotations: queries, graded qrels (0-4), document texts, frequency buckets."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    documents: dict[str, tuple[str, str]]
    buckets: dict[str, int]


def read_baidu_annotations(path: PathLike) -> BaiduAnnotations:
    """Read the Baidu-ULTR annotation file: ``qid, query, title, abstract, label, bucket`` per line.

    Tab-separated, token ids joined by ``\x01`` (as in the dataset's starter kit,
    which reads exactly these six columns). The file has no URL, so a document's
    id is ``t`` + the first 16 hex digits of the MD5 of ``title<TAB>abstract``.
    Labels must be integers 0-4 and buckets (query frequency decile, 0 = most
    frequent) integers 0-9; anything else is a DataFormatError with file and line.
    """
    import hashlib

    p = require_file(path, "Baidu-ULTR annotation file")
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    documents: dict[str, tuple[str, str]] = {}
    buckets: dict[str, int] = {}
    for lineno, cols in iter_tsv(p, "Baidu-ULTR annotation", 6,
                                 " (qid, query, title, abstract, label, bucket)"):
        qid, query, title, abstract, label, bucket = cols
        try:
            grade, freq = int(label), int(bucket)
        except ValueError:
            raise DataFormatError(f"label {label!r} and bucket {bucket!r} must be integers", p, lineno) from None
        if not 0 <= grade <= 4:
            raise DataFormatError(f"label {grade} is outside 0-4", p, lineno)
        if not 0 <= freq <= 9:
            raise DataFormatError(f"bucket {freq} is outside 0-9", p, lineno)
        docid = "t" + hashlib.md5(f"{title}\t{abstract}".encode()).hexdigest()[:16]
        queries[qid] = query.replace("\x01", " ")
        qrels.setdefault(qid, {})[docid] = grade
        documents[docid] = (title.replace("\x01", " "), abstract.replace("\x01", " "))
        buckets[qid] = freq
    return BaiduAnnotations(queries, qrels, documents, buckets)
