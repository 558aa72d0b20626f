"""Unsupervised adaptation of the SciFact reranker to Cranfield and Vaswani (labels used only to evaluate).

    PYTHONPATH=. python eval/adapt.py                                  # both collections
    PYTHONPATH=. python eval/adapt.py --collections cranfield --docs 200 --steps 200
    # smoke run: PYTHONPATH=. python eval/adapt.py --docs 4 --steps 2 --test-queries 5 --out eval/out/adapt-smoke

Per collection: ``rankkit.training.adapt.adapt`` writes queries with SmolLM2
for ``--docs`` documents drawn from k-means clusters of MiniLM embeddings,
filters them with the shipped ``minilm-scifact`` reranker and trains a LoRA
adapter from it (seeded). Then nDCG@10 on the collection's judged queries
(Cranfield: the 90 test queries of eval/continual.py's split, so both scripts
share a test set; Vaswani: its 37), BM25 top ``--top``: BM25, BM25 >> SciFact
reranker, BM25 >> adapted reranker, raw and interpolated with BM25 (per-query
z-scores, weight 0.5), with paired t-tests (Holm) against BM25 >> SciFact
reranker. Adaptation time, LLM calls and the filter counts are recorded.
Resumable: one JSON per collection in ``--out`` (default
eval/results/adapt); the adapter and its generated queries go to
eval/out/adapt/<collection>. Wall time: roughly 10-20 min per collection at
200 documents and 200 steps on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "eval"))
MODELS = ROOT / "eval" / "out" / "adapt"
WEIGHT = 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collections", default="cranfield,vaswani")
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--test-queries", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "adapt")
    args = ap.parse_args()
    import torch
    from continual import domain, test_set, write_json

    import rankkit as rk
    from rankkit.pipeline import fuse_runs
    from rankkit.training.adapt import AdaptOptions, adapt

    torch.set_num_threads(args.threads)
    out = args.out if args.out.is_absolute() else ROOT / args.out
    for name in args.collections.split(","):
        path = out / f"{name}.json"
        if path.exists():
            print(f"{name}: done")
            continue
        ds, _, test_ds, test_q = domain(name)
        sub, bm25 = test_set(test_ds, test_q, args.test_queries, args.top)
        folder = MODELS / out.name / name
        if (folder / "rankkit.json").exists():        # adapted before an interruption: reuse it
            report, adapt_seconds = json.loads((folder / "rankkit.json").read_text())["training"]["adapt"], None
        else:
            t0 = time.perf_counter()
            report = adapt(ds.corpus, "minilm-scifact", folder, AdaptOptions(
                n_docs=args.docs, clusters=args.clusters, steps=args.steps, threads=args.threads))
            adapt_seconds = round(time.perf_counter() - t0, 1)
        systems = {"bm25": bm25}
        for label, model in (("scifact", "minilm-scifact"), ("adapted", folder)):
            ce = rk.CrossEncoder(model, corpus=sub.corpus, show_progress=False)
            raw = ce(sub.queries, bm25)
            systems[label] = raw
            systems[f"{label}_interp"] = fuse_runs([bm25, raw], method="linear", norm="zscore",
                                                   weights=[1 - WEIGHT, WEIGHT], qids=list(sub.queries.ids))
        cmp = rk.compare(systems, sub, ["nDCG@10"], baseline="scifact")
        result = {"collection": name, "test_queries": len(sub.queries), "top": args.top,
                  "ndcg10": {s: cmp.means[s]["nDCG@10"] for s in systems},
                  "p_vs_scifact": {s: cmp.pvalues[s]["nDCG@10"] for s in cmp.pvalues},
                  "adapt": report, "adapt_seconds": adapt_seconds, "interpolation_weight": WEIGHT,
                  "settings": {k: str(v) for k, v in vars(args).items()}, "date": time.strftime("%Y-%m-%d %H:%M")}
        write_json(path, result)
        print(name, json.dumps(result["ndcg10"]), json.dumps(result["p_vs_scifact"]))


if __name__ == "__main__":
    main()
