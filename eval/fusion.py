"""Hybrid BM25 + MiniLM fusion on SciFact (issue 4).

Fuses the top-100 of BM25 (bm25s, English stemming and stopwords) and of
MiniLM (flat index, cached in eval/cache/ by eval/dense.py), with
reciprocal-rank fusion and with weighted linear fusion (min-max, z-score).
Settings are tuned on the TRAIN split queries only; the best of each method
is then reported once on TEST, with paired t-tests (Holm) against both parts.

    PYTHONPATH=. python eval/fusion.py           # writes eval/out/fusion.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _scifact import ROOT, SCIFACT, cached_dense, limit_threads, write_report

DEPTH = 100
RRF_K = [0, 1, 2, 5, 10, 20, 30, 60, 100, 200]
DENSE_WEIGHTS = [round(0.1 * i, 1) for i in range(1, 10)]  # weight of the dense run; BM25 gets 1-w
NORMS = ["minmax", "zscore"]


def grid() -> list[dict]:
    configs = [{"method": "rrf", "rrf_k": k} for k in RRF_K]
    configs += [{"method": "rrf", "rrf_k": k, "weights": [round(1 - w, 1), w]}
                for k in RRF_K for w in DENSE_WEIGHTS if w != 0.5]
    configs += [{"method": "linear", "norm": n, "weights": [round(1 - w, 1), w]}
                for n in NORMS for w in DENSE_WEIGHTS]
    return configs


def label(cfg: dict) -> str:
    parts = [cfg["method"]]
    if "rrf_k" in cfg:
        parts.append(f"k={cfg['rrf_k']}")
    if "norm" in cfg:
        parts.append(cfg["norm"])
    if "weights" in cfg:
        parts.append(f"w_bm25={cfg['weights'][0]},w_dense={cfg['weights'][1]}")
    return " ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "eval" / "out" / "fusion.json"))
    args = ap.parse_args()
    limit_threads(args.threads)
    import rankkit as rk

    test = rk.datasets.load_beir(args.data, split="test")
    train = rk.datasets.load_beir(args.data, split="train")
    dense, build = cached_dense(test.corpus, args.model, name=Path(args.data).name)
    bm25 = rk.BM25.build(test.corpus)
    measures = ["nDCG@10", "R@100"]

    runs = {}
    for split, ds in (("train", train), ("test", test)):
        t0 = time.perf_counter()
        runs[split] = {"bm25": (bm25 % DEPTH)(ds.queries), "dense": (dense % DEPTH)(ds.queries)}
        print(f"{split}: {len(ds.queries)} queries retrieved in {time.perf_counter() - t0:.1f}s",
              flush=True)

    def score(split: str, cfg: dict) -> dict:
        ds = train if split == "train" else test
        fused = rk.fuse_runs([runs[split]["bm25"], runs[split]["dense"]], k=DEPTH, **cfg)
        return rk.evaluate(fused, ds.qrels, measures)

    # tune on train: every setting, best per method family and overall
    tuning = []
    for cfg in grid():
        tuning.append({"config": cfg, "label": label(cfg), "train": score("train", cfg)})
    families = {"rrf (unweighted)": lambda c: c["method"] == "rrf" and "weights" not in c,
                "rrf (weighted)": lambda c: c["method"] == "rrf",
                "linear minmax": lambda c: c.get("norm") == "minmax",
                "linear zscore": lambda c: c.get("norm") == "zscore"}
    best = {}
    for fam, keep in families.items():
        cands = [t for t in tuning if keep(t["config"])]
        best[fam] = max(cands, key=lambda t: t["train"]["nDCG@10"])
    overall = max(tuning, key=lambda t: t["train"]["nDCG@10"])

    # report once on test: the parts, plain RRF (k=60), the tuned settings
    parts = {"bm25": runs["test"]["bm25"], "dense": runs["test"]["dense"]}
    train_parts = {n: rk.evaluate(runs["train"][n], train.qrels, measures) for n in parts}
    systems = dict(parts)
    systems["rrf k=60 (untuned)"] = rk.fuse_runs([parts["bm25"], parts["dense"]], method="rrf",
                                                 rrf_k=60, k=DEPTH)
    for fam, t in best.items():
        systems[f"{fam}: {t['label']}"] = rk.fuse_runs([parts["bm25"], parts["dense"]], k=DEPTH,
                                                       **t["config"])
    report = {"data": args.data, "model": args.model, "depth": DEPTH,
              "train_queries": len(train.queries), "test_queries": len(test.queries),
              "dense_cached": build["cached"], "train_parts": train_parts,
              "tuning": tuning, "best_on_train": {f: t["label"] for f, t in best.items()},
              "overall_best_on_train": overall["label"], "test": {}}
    for baseline in ("bm25", "dense"):
        cmp = rk.compare(systems, test, measures, baseline=baseline)
        report["test"][f"vs_{baseline}"] = cmp.to_dict()
        print(f"\nSciFact test, paired t-test vs {baseline}:\n{cmp.table()}", flush=True)
    print(f"\ntrain parts: {train_parts}")
    for fam, t in best.items():
        print(f"best on train [{fam}]: {t['label']} -> train {t['train']}")
    print(f"overall best on train: {overall['label']}")
    write_report(report, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
