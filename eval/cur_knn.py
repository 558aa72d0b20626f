"""Cross-encoder kNN by CUR (ANNCUR, adaCUR) vs retrieve-and-rerank on Cranfield (issue 13).

Ground truth: the exact ``minilm-scifact`` scores of the 50 test queries against
all 1,400 documents, cached by eval/cur_scores.py (run it first). Anchor
queries: the anchor-pool rows present in that cache (at most ``--anchors``; the
number used is recorded); with ``--folds F`` (default 2) the test queries are
split into F folds and each fold is searched with an index whose anchors add
the other folds' test queries (a query is never its own anchor). At query time every method's exact cross-encoder
calls are answered from the cached ground-truth rows (identical values, calls
still counted per query and checked against the budget), so the sweep takes
seconds; a live run of the real cross-encoder on ``--live`` queries gives the
pair rate behind the seconds columns (and checks the cached values).

Methods at equal budgets B (cross-encoder calls per query): ANNCUR with k_i =
25/50/75% of B (random anchor items), ANNCUR with BM25's top k_i as anchor
items, adaCUR (k_i = 50% of B in 5 rounds; round 0 random
or BM25 top), BM25 top-B -> CE and dense
(MiniLM-L6 bi-encoder) top-B -> CE. Metrics: recall of the exact top-k
(k = 1, 10, 100) in each method's top k, nDCG@10 against the qrels, and index
cost (anchor calls, seconds at the measured rate, memory of R).

    PYTHONPATH=. python eval/cur_knn.py                      # eval/out/cur_knn.json, eval/figures/cur_knn.png
    PYTHONPATH=. python eval/cur_knn.py --smoke --cache /work/main/eval/cache/scores   # a few queries
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scifact import CACHE, ROOT, cached_dense, write_report  # noqa: E402
from cur_scores import load, split  # noqa: E402

KS = (1, 10, 100)


class Lookup:
    """A cross-encoder stand-in answering (query, document) pairs from cached exact rows.

    Same ``fingerprint()`` as the real model (so a CUR index built through it is
    the real model's index); counts the pairs asked per query text.
    """

    def __init__(self, fingerprint: str, rows: dict[str, np.ndarray], docs: list[str], name: str):
        self._fp, self.rows, self.model_name = fingerprint, rows, name
        self.col = {d: j for j, d in enumerate(docs)}  # equal texts score equally: any column will do
        self.calls: Counter[str] = Counter()

    def fingerprint(self) -> str:
        return self._fp

    def predict(self, queries, docs) -> np.ndarray:
        self.calls.update(queries)
        return np.array([self.rows[q][self.col[d]] for q, d in zip(queries, docs)], dtype=np.float32)


def recall_at(ranked: list[str], exact_top: list[str], k: int) -> float:
    return len(set(ranked[:k]) & set(exact_top[:k])) / k


def rerank(cands, texts, qids, look: Lookup):
    """Candidates re-scored by the (cached) cross-encoder: one batched call, ranked by exact score."""
    import rankkit as rk

    pairs = [(q, d) for q in qids for d in cands.docids(q).tolist()]
    s = look.predict([texts[q] for q, _ in pairs], [DOCS[d] for _, d in pairs])
    out: dict[str, dict[str, float]] = {}
    for (q, d), v in zip(pairs, s):
        out.setdefault(q, {})[d] = float(v)
    return rk.Run.from_dict({q: out.get(q, {}) for q in qids})


DOCS: dict[str, str] = {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="20,50,100,200")
    ap.add_argument("--anchors", type=int, default=100, help="anchor queries at most")
    ap.add_argument("--live", type=int, default=5, help="queries scored live for the pair rate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=CACHE / "scores")
    ap.add_argument("--folds", type=int, default=2,
                    help="split the test queries into folds; each fold's anchors add the other folds' test queries")
    ap.add_argument("--smoke", action="store_true", help="few queries; anchors from cached test rows")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "cur_knn.json")
    ap.add_argument("--figure", type=Path, default=ROOT / "eval" / "figures" / "cur_knn.png")
    a = ap.parse_args()
    import torch

    import rankkit as rk
    from rankkit.evaluation import evaluate
    from rankkit.rerankers.score_cache import ScoreCache
    from rankkit.retrievers.cur import CURRetriever

    torch.set_num_threads(a.threads)
    t_start = time.time()
    ds = load()
    ids = list(ds.corpus.ids)
    docs = ds.corpus.contents
    DOCS.update(zip(ids, docs))
    ce = rk.CrossEncoder("minilm-scifact", show_progress=False)
    sc = ScoreCache(a.cache, ce.fingerprint(), ids, docs, ce.predict, read_only=True)
    test, pool = split(ds)
    test = [q for q in test if sc.has(ds.queries[q])]
    pool = [q for q in pool if sc.has(ds.queries[q])][:a.anchors]
    if a.smoke:  # the cache may hold test rows only: half of them act as anchors
        pool, test = test[:len(test) // 2][:a.anchors], test[len(test) // 2:][:6]
    if not test or not pool:
        sys.exit(f"need cached rows for test and anchor queries in {sc.dir} (run eval/cur_scores.py)")
    qtext = {q: ds.queries[q] for q in test + pool}
    gt = sc.matrix([qtext[q] for q in test])
    rows = dict(zip([qtext[q] for q in test + pool], np.concatenate([gt, sc.matrix([qtext[q] for q in pool])])))
    look = Lookup(ce.fingerprint(), rows, docs, ce.model_name)
    queries = rk.Queries({q: qtext[q] for q in test})
    exact_top = {q: [ids[j] for j in np.argsort(-gt[i], kind="stable")[:max(KS)]] for i, q in enumerate(test)}
    exact_run = rk.Run.from_dict({q: dict(zip(ids, map(float, gt[i]))) for i, q in enumerate(test)})
    qrels = ds.qrels
    print(f"{len(test)} test queries, {len(pool)} anchor queries, {len(ids)} documents", flush=True)

    budgets = [int(b) for b in a.budgets.split(",")]
    bm25 = rk.BM25.build(ds.corpus)
    bm25_run = (bm25 % max(budgets + [max(KS)]))(queries)
    dense, dense_record = cached_dense(ds.corpus, name="cranfield", show_progress=False)
    dense_s = dense_record["build_s"]
    dense_run = (dense % max(budgets))(queries)

    max_ki = int(0.75 * max(budgets))
    # folds: the test queries of the other folds join the anchor pool (a query is never its own anchor)
    folds = [test[f::a.folds] for f in range(a.folds)]
    acc: dict[tuple[str, int], dict] = {}

    def ndcg10(run, qs) -> list[float]:
        """Per query over ``qs`` only (the qrels judge all 225)."""
        per = evaluate(run, qrels, ["nDCG@10"], per_query=True)
        return [per.get(q, {}).get("nDCG@10", 0.0) for q in qs]

    def score(run, name, b, qs, extra=None):
        per = {q: list(run.docids(q)) for q in qs}
        cell = acc.setdefault((name, b), {"method": name, "budget": b, "nd": [], "calls": [],
                                          **{f"R@{k}": [] for k in KS}, "cond": []})
        for k in KS:
            cell[f"R@{k}"] += [recall_at(per[q], exact_top[q], k) for q in qs]
        cell["nd"] += ndcg10(run, qs)
        calls = [look.calls[qtext[q]] for q in qs]
        if max(calls) > b:
            raise SystemExit(f"{name}: {max(calls)} calls for one query exceed the budget {b}")
        cell["calls"] += calls
        if extra:
            cell["k_i"] = extra["k_i"]
            cell["cond"].append(extra["cond"])
        look.calls.clear()

    build_s, conds = [], []
    for f, fold in enumerate(folds):
        anchor_texts = [qtext[q] for q in pool] + [qtext[q] for q in test if q not in set(fold)]
        fq = queries.subset(fold)
        t0 = time.perf_counter()
        cur = CURRetriever.build(ds.corpus, look, anchor_texts, k_i=min(max_ki, len(ids)), k_r=0,
                                 n_anchor_items=max_ki)
        build_s.append(time.perf_counter() - t0)
        conds.append(cur.config["condition_number"])
        cur_fs = CURRetriever.build(ds.corpus, look, anchor_texts, k_i=1, k_r=0, anchor_items="first-stage",
                                    first_stage=bm25_run)
        for b in budgets:
            look.calls.clear()
            for frac in (0.25, 0.5, 0.75):
                k_i = max(1, int(frac * b))
                c = cur.with_budget(k_i=k_i, k_r=b - k_i, rounds=1)
                score((c % max(KS))(fq), f"anncur ki={int(frac * 100)}%", b, fold,
                      {"k_i": k_i, "cond": c.stats["condition_number"]})
            k_i = max(1, b // 2)
            c = cur_fs.with_budget(k_i=k_i, k_r=b - k_i, rounds=1)
            score((c % max(KS))(fq), "anncur bm25-anchors", b, fold, {"k_i": k_i, "cond": c.stats["condition_number"]})
            c = cur.with_budget(k_i=k_i, k_r=b - k_i, rounds=min(5, k_i))
            score((c % max(KS))(fq), "adacur 5 rounds", b, fold, {"k_i": k_i, "cond": c.stats["condition_number"]})
            c = cur_fs.with_budget(k_i=k_i, k_r=b - k_i, rounds=min(5, k_i))
            score((c % max(KS))(fq), "adacur bm25-anchors", b, fold, {"k_i": k_i, "cond": c.stats["condition_number"]})
            score(rerank(bm25_run.top(b), qtext, fold, look), "bm25 -> CE", b, fold)
            score(rerank(dense_run.top(b), qtext, fold, look), "dense -> CE", b, fold)
            print(f"fold {f + 1}/{len(folds)} budget {b}: done", flush=True)
    results = []
    for cell in acc.values():
        row = {"method": cell["method"], "budget": cell["budget"],
               **{f"R@{k}": float(np.mean(cell[f"R@{k}"])) for k in KS}, "nDCG@10": float(np.mean(cell["nd"])),
               "max_calls": int(max(cell["calls"])), "mean_calls": float(np.mean(cell["calls"]))}
        if cell["cond"]:
            row.update(k_i=cell["k_i"], cond=float(max(cell["cond"])))
        results.append(row)
    n_anchor = len(pool) + (len(test) - len(folds[0]) if a.folds > 1 else 0)
    exact_ndcg = float(np.mean(ndcg10(exact_run, test)))

    # live: the real cross-encoder on a few queries, through ANNCUR at the largest budget (pair rate, same scores)
    live_q = queries.subset(folds[-1][:a.live])  # not anchors of the last fold's index
    b_live = max(budgets)
    real = cur.with_budget(k_i=b_live // 2, k_r=b_live - b_live // 2, rounds=1)
    real.cross_encoder = ce
    real.score_fn = None
    t0 = time.perf_counter()
    live_run = real(live_q)
    live_s = time.perf_counter() - t0
    pairs = real.stats["calls"]
    rate = pairs / live_s
    diff = max(float(np.max(np.abs(live_run.scores(q) - np.array(
        [rows[qtext[q]][ids.index(d)] for d in live_run.docids(q)])))) for q in live_q.ids)
    for r in results:
        r["seconds_per_query"] = r["budget"] / rate

    index = {"anchor_queries": n_anchor, "anchor_pool_queries": len(pool), "folds": a.folds,
             "anchor_calls": n_anchor * len(ids), "anchor_seconds_at_rate": n_anchor * len(ids) / rate,
             "R_bytes_float32": n_anchor * len(ids) * 4, "R_bytes_float16": n_anchor * len(ids) * 2,
             "build_s_from_cache": max(build_s), "dense_index_s": dense_s,
             "anchor_condition_number": max(conds)}
    report = {"collection": "cranfield", "model": "minilm-scifact", "test_queries": len(test),
              "documents": len(ids), "budgets": budgets, "ks": list(KS), "results": results,
              "exact_ce_nDCG@10": exact_ndcg,
              "live": {"queries": len(live_q), "pairs": pairs, "seconds": live_s, "pairs_per_s": rate, "budget": b_live,
                       "max_abs_diff_vs_cache": diff},
              "index": index, "smoke": a.smoke, "wall_s": time.time() - t_start}
    write_report(report, a.out)
    _table(report)
    _plot(report, a.figure)
    _markdown(report)


def _table(rep) -> None:
    print(f"\n{'method':24s} {'B':>4s} {'R@1':>6s} {'R@10':>6s} {'R@100':>6s} {'nDCG@10':>8s} {'calls':>6s} {'s/q':>6s}")
    for r in rep["results"]:
        print(f"{r['method']:24s} {r['budget']:4d} {r['R@1']:6.3f} {r['R@10']:6.3f} {r['R@100']:6.3f} "
              f"{r['nDCG@10']:8.4f} {r['max_calls']:6d} {r['seconds_per_query']:6.2f}")
    print(f"exact CE over all {rep['documents']} documents: nDCG@10 {rep['exact_ce_nDCG@10']:.4f}; "
          f"live rate {rep['live']['pairs_per_s']:.1f} pairs/s; wall {rep['wall_s']:.0f}s")


def _plot(rep, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, len(rep["ks"]), figsize=(5 * len(rep["ks"]), 4), sharey=True)
    methods = list(dict.fromkeys(r["method"] for r in rep["results"]))
    for ax, k in zip(axes, rep["ks"]):
        for m in methods:
            pts = [(r["budget"], r[f"R@{k}"]) for r in rep["results"] if r["method"] == m]
            ax.plot(*zip(*pts), marker="o", label=m)
        ax.set_xscale("log")
        ax.set_xticks(rep["budgets"], [str(b) for b in rep["budgets"]])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"top-{k} recall of the exact cross-encoder")
        ax.set_xlabel("cross-encoder calls per query")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall")
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"Cranfield, minilm-scifact, {rep['test_queries']} queries, "
                 f"{rep['index']['anchor_queries']} anchor queries")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _markdown(rep) -> None:
    ix, live = rep["index"], rep["live"]
    print("\n### Cross-encoder kNN by CUR (issue 13): eval/cur_knn.py\n")
    print(f"Cranfield ({rep['documents']} docs), `minilm-scifact`, {rep['test_queries']} test queries; "
          f"ground truth = exact CE scores of every (test query, document) pair; "
          f"{ix['anchor_queries']} anchor queries ({ix['anchor_pool_queries']} from the anchor pool"
          f"{' + the other fold' + chr(39) + 's test queries, ' + str(ix['folds']) + ' folds' if ix['folds'] > 1 else ''}; R = {ix['anchor_calls']:,} calls, "
          f"{ix['anchor_seconds_at_rate'] / 60:.0f} min at {live['pairs_per_s']:.0f} pairs/s, "
          f"{ix['R_bytes_float32'] / 2**20:.2f} MiB float32). Exact CE over all documents: "
          f"nDCG@10 {rep['exact_ce_nDCG@10']:.4f}.\n")
    print("| method | B | R@1 | R@10 | R@100 | nDCG@10 | s/query |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rep["results"]:
        print(f"| {r['method']} | {r['budget']} | {r['R@1']:.3f} | {r['R@10']:.3f} | {r['R@100']:.3f} | "
              f"{r['nDCG@10']:.4f} | {r['seconds_per_query']:.2f} |")
    print(f"\nLive check: {live['queries']} queries through ANNCUR (B={max(rep['budgets'])}) with the real model, "
          f"{live['pairs_per_s']:.1f} pairs/s, max |live - cached| = {live['max_abs_diff_vs_cache']:.2g}.")


if __name__ == "__main__":
    main()
