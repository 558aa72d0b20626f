"""Exact cross-encoder score matrices on disk, keyed by model and corpus, filled row by row.

Ground-truth matrices (every query x every document) cost hours of cross-encoder
calls on a CPU, and the CUR index's anchor matrix is one too. ``ScoreCache``
keeps them under ``folder/<model fingerprint>/<corpus fingerprint>/``:

- ``docids.txt``: the column order (one document id per line);
- ``rows.f32``: float32 rows of ``len(docids)`` values, appended;
- ``queries.tsv``: one line per finished row (``sha1(query text)<TAB>text``),
  appended only after that row's values are flushed to disk.

A crash mid-row leaves extra bytes in ``rows.f32`` past the last indexed row;
they are cut on the next open, so at most one row is lost and nothing wrong is
ever read. Rows are looked up by the query's text, so any query set reuses them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, RankkitError

ScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def corpus_key(docids: Sequence[str], texts: Sequence[str]) -> str:
    """A fingerprint of the documents (ids, order and texts) the columns hold."""
    h = hashlib.sha256()
    for d, t in zip(docids, texts):
        h.update(d.encode("utf-8") + b"\0" + t.encode("utf-8") + b"\1")
    return h.hexdigest()[:16]


class ScoreCache:
    """Rows of exact scores of queries against all documents of one corpus, for one model.

    ``score_fn(queries, docs)`` scores aligned text pairs (``CrossEncoder.predict``);
    ``model_key`` names the model (``CrossEncoder.fingerprint()``); scores from
    another model or another corpus live in another folder and are never mixed.
    ``read_only=True`` opens a cache another process may be filling: it writes
    nothing (an unfinished last row is left alone, not cut) and asking for a
    missing row is an error.
    """

    def __init__(self, folder: str | os.PathLike, model_key: str, docids: Sequence[str],
                 texts: Sequence[str], score_fn: ScoreFn, read_only: bool = False):
        if len(docids) != len(texts):
            raise RankkitError(f"ScoreCache: {len(docids)} document ids but {len(texts)} texts")
        if not len(docids):
            raise RankkitError("ScoreCache: the corpus is empty")
        self.docids = [str(d) for d in docids]
        self.texts = list(texts)
        self.score_fn = score_fn
        self.dir = Path(folder) / model_key / corpus_key(self.docids, self.texts)
        self.read_only = read_only
        if read_only and not self.dir.is_dir():
            raise RankkitError(f"ScoreCache: no cached scores for this model and corpus under {self.dir}")
        if not read_only:
            self.dir.mkdir(parents=True, exist_ok=True)
        self._rows_path = self.dir / "rows.f32"
        self._index_path = self.dir / "queries.tsv"
        ids_path = self.dir / "docids.txt"
        if ids_path.exists():
            if ids_path.read_text(encoding="utf-8").split("\n")[:-1] != self.docids:
                raise DataFormatError(f"{ids_path}: column ids differ from this corpus (damaged cache?)")
        elif not read_only:
            tmp = ids_path.with_suffix(".tmp")
            tmp.write_text("".join(d + "\n" for d in self.docids), encoding="utf-8")
            os.replace(tmp, ids_path)
        self._rows: dict[str, int] = {}
        if self._index_path.exists():
            for n, line in enumerate(self._index_path.read_text(encoding="utf-8").splitlines(), 1):
                key, sep, _ = line.partition("\t")
                if not sep or len(key) != 40:
                    raise DataFormatError(f"{self._index_path}:{n}: expected 'sha1<TAB>query text'")
                self._rows.setdefault(key, n - 1)
        self._n_rows = len(self._index_path.read_text(encoding="utf-8").splitlines()) \
            if self._index_path.exists() else 0
        row_bytes = 4 * len(self.docids)
        size = self._rows_path.stat().st_size if self._rows_path.exists() else 0
        if size < self._n_rows * row_bytes:
            raise DataFormatError(f"{self._rows_path}: {size} bytes hold fewer than the "
                                  f"{self._n_rows} rows {self._index_path.name} lists")
        if size > self._n_rows * row_bytes and not read_only:  # a row interrupted mid-write: drop it
            with open(self._rows_path, "r+b") as f:
                f.truncate(self._n_rows * row_bytes)

    def __len__(self) -> int:
        return len(self._rows)

    def has(self, query: str) -> bool:
        return text_key(query) in self._rows

    def matrix(self, queries: Sequence[str], chunk: int = 1, show_progress: bool = False) -> np.ndarray:
        """Scores ``(len(queries), n_docs)`` float32, computing (and storing) the missing rows.

        Missing rows are scored ``chunk`` queries at a time (one ``score_fn`` call
        over ``chunk * n_docs`` pairs) and each row is on disk before the next starts.
        """
        from tqdm.auto import tqdm

        todo = list(dict.fromkeys(q for q in queries if text_key(q) not in self._rows))
        if todo and self.read_only:
            raise RankkitError(f"ScoreCache: {len(todo)} of {len(queries)} rows are not cached in {self.dir} "
                               "(opened read-only)")
        n_d = len(self.docids)
        bar = tqdm(total=len(todo), desc="score rows", unit="query", disable=not show_progress)
        for c0 in range(0, len(todo), max(1, chunk)):
            part = todo[c0:c0 + max(1, chunk)]
            pairs_q = [q for q in part for _ in range(n_d)]
            scores = np.asarray(self.score_fn(pairs_q, self.texts * len(part)), dtype=np.float32)
            if scores.shape != (len(part) * n_d,):
                raise RankkitError(f"score_fn returned {scores.shape} scores for {len(part) * n_d} pairs")
            for i, q in enumerate(part):
                self._append(q, scores[i * n_d:(i + 1) * n_d])
            bar.update(len(part))
        bar.close()
        if not queries:
            return np.empty((0, n_d), dtype=np.float32)
        rows = np.memmap(self._rows_path, dtype=np.float32, mode="r", shape=(self._n_rows, n_d))
        return np.array(rows[[self._rows[text_key(q)] for q in queries]])

    def _append(self, query: str, row: np.ndarray) -> None:
        with open(self._rows_path, "ab") as f:
            f.write(np.ascontiguousarray(row, dtype=np.float32).tobytes())
            f.flush()
            os.fsync(f.fileno())
        clean = query.replace("\t", " ").replace("\n", " ").replace("\r", " ")
        with open(self._index_path, "a", encoding="utf-8") as f:
            f.write(f"{text_key(query)}\t{clean}\n")
            f.flush()
            os.fsync(f.fileno())
        self._rows[text_key(query)] = self._n_rows
        self._n_rows += 1
