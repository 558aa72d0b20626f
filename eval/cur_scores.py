"""Exact cross-encoder scores for Cranfield: the ground truth and anchor rows of eval/cur_knn.py.

Cranfield (1,400 abstracts, 225 queries) is scored in full against every
document by the shipped reranker (``minilm-scifact``, 128 tokens): the 50 test
queries first, then the anchor-query pool, one row per query, stored in the
shared ``ScoreCache`` under ``eval/cache/scores`` (resumable: rerun to go on).
The query split is fixed (seed 0 permutation of the query ids): ``split()``.

    python eval/cur_scores.py [--anchors 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scifact import CACHE, SHARED  # noqa: E402

CRANFIELD = SHARED / "beir" / "cranfield"
N_TEST = 50


def load():
    from rankkit.datasets.beir import load_beir

    return load_beir(CRANFIELD, all_queries=True)


def split(ds, n_test: int = N_TEST) -> tuple[list[str], list[str]]:
    """(test query ids, anchor-pool query ids): a fixed seed-0 permutation of the judged queries."""
    import numpy as np

    judged = sorted({q for q in ds.qrels if ds.qrels.relevant(q)} & set(ds.queries.ids), key=lambda q: int(q) if q.isdigit() else q)
    perm = np.random.default_rng(0).permutation(len(judged))
    ids = [judged[i] for i in perm]
    return ids[:n_test], ids[n_test:]


def cache(ds, ce):
    from rankkit.rerankers.score_cache import ScoreCache

    ids = list(ds.corpus.ids)
    return ScoreCache(CACHE / "scores", ce.fingerprint(), ids, [ds.corpus[d] for d in ids], ce.predict)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchors", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    import rankkit as rk

    torch.set_num_threads(a.threads)
    ds = load()
    ce = rk.CrossEncoder("minilm-scifact", show_progress=False)
    sc = cache(ds, ce)
    test, pool = split(ds)
    order = test + pool[:a.anchors]
    texts = [ds.queries[q] for q in order]
    t0 = time.time()
    before = sum(sc.has(t) for t in texts)
    for i in range(0, len(texts), 2):
        sc.matrix(texts[i:i + 2], chunk=2)
        done = sum(sc.has(t) for t in texts)
        el = time.time() - t0
        rate = (done - before) * len(ds.corpus) / max(el, 1e-9)
        print(f"{time.strftime('%H:%M:%S')} rows {done}/{len(texts)}  {rate:.1f} pairs/s", flush=True)


if __name__ == "__main__":
    main()
