"""Unbiased learning to rank on LTR features: oracle, naive clicks, IPS and DLA.

Data: ``../shared/data/ltr/lightgbm`` (201 train / 50 test queries, 300 features,
grades 0-4). For each examination strength ``eta`` and seed:

1. Logging ranker (deliberately weak): least squares on 10 randomly chosen
   features (fixed seed), fitted on the grades of the first 20 training queries
   only. It ranks every training query once; sessions show its top 10.
2. Clicks: ``--sessions`` (default 100,000) sessions drawn uniformly over the
   training queries, position-based model with examination ``(1/rank)^eta`` and
   ULTRA's relevance-to-click mapping (eps- = 0.1, eps+ = 1.0, max grade 4).
3. The same MLP ranker (rankkit.ultr.features.FeatureRanker) trained on
   - oracle: the true grades of all training documents (listwise softmax),
   - naive: clicks as labels (listwise softmax),
   - IPS: clicks weighted by the true inverse propensities (clipped at 100),
   - DLA: propensities estimated jointly with the ranker.
4. nDCG@10 (ir-measures, linear gain) on the 50 test queries.

Reports mean and standard deviation over 5 seeds (the seed drives the clicks and
the model initialisation), a paired t-test over test queries (per-query nDCG@10
averaged over seeds) for DLA vs naive and DLA vs IPS, and DLA's estimated
propensities against the true ones (plot: ``eval/out/ultr_propensities.png``).

    PYTHONPATH=. python eval/ultr.py [--json] [--seeds 5] [--sessions 100000] [--curve ultra]

Writes ``eval/out/ultr.json`` (``ultr_ultra.json`` with ``--curve ultra``). One torch thread; a few minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
OUT = ROOT / "eval" / "out"
METHODS = ("oracle", "naive", "ips", "dla")
LOGGER_FEATURES, LOGGER_QUERIES, LOGGER_SEED = 10, 20, 1


def logging_scores(train: Any, data: Any = None) -> np.ndarray:
    """The weak logging ranker (see the module docstring), fitted on ``train``, scoring ``data`` (default train)."""
    feats = np.random.default_rng(LOGGER_SEED).choice(train.X.shape[1], LOGGER_FEATURES, replace=False)
    rows = slice(0, int(train.offsets[LOGGER_QUERIES]))
    design = np.c_[train.X[:, feats], np.ones(len(train.y))]
    w = np.linalg.lstsq(design[rows], train.y[rows], rcond=None)[0]
    data = train if data is None else data
    return np.c_[data.X[:, feats], np.ones(len(data.y))] @ w


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "ltr" / "lightgbm")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--etas", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--curve", choices=["ultra"], default=None,
                    help="examination curve^eta instead of (1/rank)^eta (ULTRA's measured curve)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)

    import torch

    from rankkit.evaluation import Evaluator, paired_test
    from rankkit.report import format_table
    from rankkit.ultr.features import read_svmlight, train_on_clicks, train_on_labels
    from rankkit.ultr.losses import DLA, IPS, NaiveClicks
    from rankkit.ultr.simulate import PositionBasedModel, simulate_clicks

    torch.set_num_threads(1)
    t0 = time.time()
    train = read_svmlight(args.data / "rank.train")
    test = read_svmlight(args.data / "rank.test", n_features=train.X.shape[1])
    train_qrels = train.qrels()
    ev = Evaluator(test.qrels(), "nDCG@10")
    test_qids = list(test.qids)

    def per_query(scores: np.ndarray) -> np.ndarray:
        return ev.per_query_matrix(test.run(scores), test_qids)[0]

    logger = train.run(logging_scores(train), name="logging")
    logger_test = test.run(logging_scores(train, test), name="logging")
    logger_ndcg = float(ev.evaluate(logger_test)["nDCG@10"])

    per_q: dict[str, list[np.ndarray]] = {}
    props: dict[str, list[list[float]]] = {}
    true_props: dict[str, list[float]] = {}
    ctr: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        oracle = train_on_labels(train, epochs=args.epochs, seed=seed)
        per_q.setdefault("oracle", []).append(per_query(oracle.ranker.score(test.X)))
        for eta in args.etas:
            key = f"eta={eta:g}"
            model = PositionBasedModel(eta=eta, max_grade=4, curve=args.curve)
            log = simulate_clicks(logger, train_qrels, args.sessions, model, k=10, seed=seed)
            true_p = model.examination(log.width)
            true_props[key] = (true_p / true_p[0]).tolist()  # DLA estimates relative to rank 1
            ctr.setdefault(key, []).append(float(log.clicks.sum() / len(log)))
            for name, objective in (("naive", NaiveClicks()), ("ips", IPS(true_p, max_weight=100.0)),
                                    ("dla", DLA(log.width, max_weight=100.0))):
                res = train_on_clicks(log, train, objective, epochs=args.epochs, seed=seed)
                per_q.setdefault(f"{key}/{name}", []).append(per_query(res.ranker.score(test.X)))
                if name == "dla":
                    props.setdefault(key, []).append(res.propensities.tolist())
        print(f"seed {seed} done ({time.time() - t0:.0f} s)", file=sys.stderr)

    rows: list[dict[str, Any]] = []
    for system, runs in per_q.items():
        means = [float(r.mean()) for r in runs]
        rows.append({"system": system, "mean": float(np.mean(means)), "std": float(np.std(means, ddof=1))
                     if len(means) > 1 else 0.0, "per_seed": means})
    tests = {}
    for eta in args.etas:
        key = f"eta={eta:g}"
        dla = np.mean(per_q[f"{key}/dla"], axis=0)
        for other in ("naive", "ips"):
            b = np.mean(per_q[f"{key}/{other}"], axis=0)
            tests[f"{key}: dla vs {other}"] = {"diff": float(dla.mean() - b.mean()),
                                                "p_value": float(paired_test(dla, b, "t"))}
    prop_summary = {}
    for key, est in props.items():
        e = np.asarray(est)
        t = np.asarray(true_props[key])
        prop_summary[key] = {"true": t.tolist(), "dla_mean": e.mean(0).tolist(), "dla_std": e.std(0).tolist(),
                             "abs_error_mean": float(np.abs(e.mean(0) - t).mean()),
                             "clicks_per_session": float(np.mean(ctr[key]))}
    result = {
        "data": str(args.data), "train_queries": len(train), "test_queries": len(test),
        "sessions": args.sessions, "seeds": args.seeds, "epochs": args.epochs, "measure": "nDCG@10",
        "logging_ranker": {"description": f"least squares on {LOGGER_FEATURES} random features, fitted on "
                                          f"{LOGGER_QUERIES} training queries", "test_nDCG@10": logger_ndcg},
        "click_model": f"PBM, examination {'ULTRA curve' if args.curve else '(1/rank)'}^eta, eps-=0.1, eps+=1.0, "
                       "top 10 shown",
        "results": rows, "paired_tests": tests, "propensities": prop_summary,
        "seconds": round(time.time() - t0, 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.curve}" if args.curve else ""
    (OUT / f"ultr{suffix}.json").write_text(json.dumps(result, indent=2))
    result["plot"] = str(plot(prop_summary, OUT / f"ultr_propensities{suffix}.png"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"logging ranker nDCG@10 on test: {logger_ndcg:.4f}")
        print(format_table(["system", "nDCG@10 mean", "std", "per seed"],
                           [[r["system"], f"{r['mean']:.4f}", f"{r['std']:.4f}",
                             " ".join(f"{x:.3f}" for x in r["per_seed"])] for r in rows]))
        print(format_table(["comparison", "diff", "p (paired t, 50 test queries)"],
                           [[k, f"{v['diff']:+.4f}", f"{v['p_value']:.3g}"] for k, v in tests.items()]))
        for key, s in prop_summary.items():
            print(f"{key}: true  " + " ".join(f"{x:.3f}" for x in s["true"]))
            print(f"{key}: DLA   " + " ".join(f"{x:.3f}" for x in s["dla_mean"])
                  + f"  (mean |error| {s['abs_error_mean']:.4f})")
        print(f"wrote {OUT / f'ultr{suffix}.json'} and {result['plot']} in {result['seconds']} s")
    return result


def plot(summary: dict[str, Any], path: Path) -> Path:
    """DLA's estimated propensities (mean and std over seeds) against the true ones, and their error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(summary), figsize=(5 * len(summary), 7), squeeze=False)
    for j, (key, s) in enumerate(summary.items()):
        ranks = np.arange(1, len(s["true"]) + 1)
        true, est, std = (np.asarray(s[k]) for k in ("true", "dla_mean", "dla_std"))
        ax = axes[0, j]
        ax.plot(ranks, true, "k-o", label="true (relative to rank 1)")
        ax.errorbar(ranks, est, yerr=std, fmt="s--", capsize=3, label="DLA estimate (mean ± std, seeds)")
        ax.set_title(f"PBM {key}")
        ax.set_xlabel("rank")
        ax.set_ylabel("examination propensity (rank 1 = 1)")
        ax.legend()
        ax = axes[1, j]
        ax.axhline(0, color="k", lw=0.8)
        ax.errorbar(ranks, est - true, yerr=std, fmt="s", capsize=3)
        ax.set_xlabel("rank")
        ax.set_ylabel("estimate - true")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
