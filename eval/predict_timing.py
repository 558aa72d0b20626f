"""Best-of-N seconds of ``rk.CrossEncoder.predict`` alone, for before/after comparisons of the code.

    PYTHONPATH=. python eval/predict_timing.py          # run it in each checkout, alternating

Same pairs as ``eval/rerank_speed.py`` (BM25 top 50 of the first 12 SciFact test
queries, 256 tokens, batch 32, 2 threads, the shipped reranker merged into a plain
folder by ``rerank_speed.py`` first); one warm-up batch, then ``--repeats`` timed
passes over all pairs. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "eval"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import rerank_scifact as rs
    import torch

    import rankkit as rk

    torch.set_num_threads(args.threads)
    folder = rs.CACHE / "merged-minilm-scifact-lora"
    if not folder.exists():
        raise SystemExit(f"{folder} is missing: run eval/rerank_speed.py once first")
    ds = rs.dataset("test")
    qids = ds.queries.ids[:12]
    run = rs.bm25_run(ds, 100).subset(qids).top(50)
    pq, qidx, docids = run.pairs(ds.queries.subset(qids))
    queries = [ds.queries[pq[i]] for i in qidx.tolist()]
    docs = [ds.corpus[d] for d in docids.tolist()]
    ce = rk.CrossEncoder(folder, max_length=256, batch_size=32, show_progress=False)
    ce.predict(queries[:32], docs[:32])
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ce.predict(queries, docs)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"pairs": len(docs), "best_s": best, "pairs_per_s": len(docs) / best}))


if __name__ == "__main__":
    main()
