"""Adapter methods compared on one budget: what each buys a reranker per trainable parameter.

    PYTHONPATH=. python eval/adapter_methods.py                       # every registered method
    PYTHONPATH=. python eval/adapter_methods.py --methods lora,lora_sb --steps 300 --sweep-steps 100
    PYTHONPATH=. python eval/adapter_methods.py --report              # table + plot from the JSONs

Every method trains the MiniLM-L6 cross-encoder of the shipped recipe
(configs/minilm-scifact-lora.yaml: its data, batch of 4 groups x 8 pairs,
max_length, warmup, weight decay, bf16, seed), its adapter swapped for the
method's (options in ``METHODS``, the LoRA family on the recipe's target
modules). Per method:

1. a small learning-rate sweep (``METHODS[m]["grid"]``, recorded in the
   result): ``--sweep-steps`` steps per rate, nDCG@10 of the BM25 top-20
   reranked on the recipe's dev split (10% of SciFact train queries, never
   trained on); the best rate wins. A best rate on an edge of the
   rates swept so far is no optimum: the sweep goes on past that edge by the
   grid's own step (``next_rate``, at most ``MAX_EXTENSIONS`` rates per side),
   so no method is judged at a learning rate its grid cut short. A finished
   result whose rate sits on an unexplored edge, or written before the check
   of step 2, is re-opened (its sweep points are kept; the old result moves
   to ``superseded/``);
2. one run of ``--steps`` steps (the same for every method) at that rate,
   scored on dev and test. A rate good for the short sweep can diverge over the
   longer schedule (LoRA at 2e-3 did: dev 0.687 after 100 steps, test 0.16
   after 300), so a final run whose dev nDCG@10 falls more than
   ``UNSTABLE_DROP`` below its own sweep run's is unstable: the next-best
   sweep rate is trained at the full budget too (at most ``MAX_FALLBACKS``),
   and the final with the best dev nDCG@10 is the method's result (every
   final kept under ``finals``); the interpolation weight with BM25 (per-query
   z-scores) is picked on dev for that final. Reported: SciFact test nDCG@10
   of the BM25 top-20 reranked, raw and interpolated, with per-query values
   (the table's paired t-test against LoRA); trainable parameters, peak
   memory (max RSS of the method's process), seconds per step and the
   initialisation's seconds (LoRA-GA, EVA, LoRA-SB).

Each method runs in its own process. Resumable: a finished method's result
is ``eval/results/adapter_methods/<method>.json`` (written atomically) and is
skipped; sweep points are kept in ``<method>.partial.json`` as they finish,
and the final run checkpoints every 100 steps. The markdown table
(``eval/results/adapter_methods/table.md``) and the plot
(``eval/figures/adapter_methods.png``: nDCG@10 against trainable parameters,
log x) are built from whatever JSONs exist.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "eval" / "results" / "adapter_methods"  # tracked: commit each method as it finishes
MODELS = ROOT / "eval" / "out" / "adapter_methods" / "models"  # checkpoints and adapters (ignored)
FIGURE = ROOT / "eval" / "figures" / "adapter_methods.png"
RECIPE = ROOT / "configs" / "minilm-scifact-lora.yaml"
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
TARGETS = ["query", "key", "value", "dense"]
#: interpolation weights (of the reranker) tried on dev
WEIGHTS = [0.2, 0.4, 0.5, 0.6, 0.8]

LORA_GRID = [2e-4, 5e-4, 1e-3]
SMALL_GRID = [1e-3, 3e-3, 1e-2]          # few trainable numbers per layer want larger steps
#: rates the sweep may add beyond each end of a method's grid while the best sits on that end
MAX_EXTENSIONS = 2
#: a full-budget run whose dev nDCG@10 falls this far below its short sweep run's is unstable at that rate
UNSTABLE_DROP = 0.01
#: next-best sweep rates trained at the full budget when the best one is unstable there
MAX_FALLBACKS = 2
#: method -> adapter options and learning-rate grid (the recipe's LoRA: r=16, alpha=32, its targets)
METHODS: dict[str, dict[str, Any]] = {
    "full": {"options": {}, "grid": [2e-5, 5e-5, 1e-4]},
    "lora": {"options": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": TARGETS},
             "grid": LORA_GRID},
    "dora": {"options": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": TARGETS},
             "grid": LORA_GRID},
    "pissa": {"options": {"r": 16, "lora_alpha": 16, "target_modules": TARGETS}, "grid": [5e-5, 2e-4, 5e-4]},
    "olora": {"options": {"r": 16, "lora_alpha": 16, "target_modules": TARGETS}, "grid": [5e-5, 2e-4, 5e-4]},
    "lora_ga": {"options": {"r": 16, "lora_alpha": 32, "target_modules": TARGETS}, "grid": [5e-5, 2e-4, 5e-4]},
    # EVA's SVD cycles the init batches until converged (~12 s a pass here): a looser tau keeps it bounded
    "eva": {"options": {"r": 16, "lora_alpha": 32, "target_modules": TARGETS, "eva_config": {"tau": 0.9}},
            "grid": LORA_GRID},
    "adalora": {"options": {"init_r": 24, "target_r": 16, "lora_alpha": 32, "target_modules": TARGETS},
                "grid": LORA_GRID},
    "vera": {"options": {"r": 256, "target_modules": TARGETS}, "grid": SMALL_GRID},
    "randlora": {"options": {"r": 32, "target_modules": TARGETS}, "grid": LORA_GRID},
    "tinylora": {"options": {"r": 2, "u": 64, "target_modules": TARGETS}, "grid": SMALL_GRID},
    "lora_xs": {"options": {"r": 16, "target_modules": TARGETS}, "grid": SMALL_GRID},
    "lora_sb": {"options": {"r": 16, "target_modules": TARGETS}, "grid": SMALL_GRID},
    "ia3": {"options": {}, "grid": SMALL_GRID},
}


# ------------------------------------------------------------------------- files
def write_json(path: Path, obj: Any) -> None:
    from rankkit.io import atomic_path

    with atomic_path(path) as fh:
        fh.write(json.dumps(obj, indent=2, default=str))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def next_rate(grid: list[float], sweep: dict[str, Any]) -> float | None:
    """The next rate to sweep: one grid step past the edge the best dev rate sits on, or None.

    ``sweep`` maps rate -> {"lr", "dev": {"raw", ...}}; the step is the grid's ratio
    at that end (e.g. 5e-4 -> 1e-3 -> 2e-3), and each side grows at most MAX_EXTENSIONS times.
    """
    if not sweep:
        return None
    rates = sorted(float(r["lr"]) for r in sweep.values())
    best = float(max(sweep.values(), key=lambda r: r["dev"]["raw"])["lr"])
    lo, hi = min(grid), max(grid)
    if len(rates) > 1 and best == rates[-1] and sum(r > hi * (1 + 1e-9) for r in rates) < MAX_EXTENSIONS:
        return float(f"{rates[-1] * grid[-1] / grid[-2]:.3g}")
    if len(rates) > 1 and best == rates[0] and sum(r < lo * (1 - 1e-9) for r in rates) < MAX_EXTENSIONS:
        return float(f"{rates[0] * grid[0] / grid[1]:.3g}")
    return None


# ------------------------------------------------------------------------- one method (child process)
def recipe() -> dict[str, Any]:
    """The shipped recipe, its shared-data paths re-rooted at $RANKKIT_SHARED_DATA."""
    from rankkit.training.config import load_config

    cfg = load_config(RECIPE)
    for src in cfg["data"]:
        path = str(src.get("path", ""))
        if "shared/data/" in path:
            src["path"] = str(SHARED / path.split("shared/data/", 1)[1])
    return cfg


def evaluation_set(split_qids: list[str], split: str, limit: int | None) -> tuple[Any, Any]:
    """(dataset, BM25 top-20 run) for SciFact ``split`` ("train" queries restricted to dev, or test)."""
    import rankkit as rk
    from rankkit.training.data import cached_run

    ds = rk.datasets.load_beir(SHARED / "beir" / "scifact", split=split)
    qids = sorted(split_qids) if split_qids else list(ds.queries.ids)
    qids = [q for q in qids if q in ds.qrels][: limit or None]
    ds = rk.Dataset(ds.corpus, ds.queries.subset(qids), ds.qrels.subset(qids))
    run = cached_run(rk.BM25.build(ds.corpus), ds.queries, ROOT / "eval" / "cache", ds.corpus.fingerprint(), k=100)
    return ds, run.subset(qids).top(20)


def rerank_scores(folder: Path, ds: Any, bm25: Any, max_length: int,
                  per_query: dict[str, Any] | None = None) -> dict[str, float]:
    """nDCG@10 of BM25 top-20: BM25, reranked (raw), and interpolated with every weight of WEIGHTS.

    With ``per_query`` (a dict), also fills it with ``{condition: {qid: nDCG@10}}`` so that
    methods can be compared with a paired test across result files.
    """
    import rankkit as rk
    from rankkit.pipeline import fuse_runs

    ce = rk.CrossEncoder(folder, corpus=ds.corpus, max_length=max_length, batch_size=32, show_progress=False)
    runs = {"bm25": bm25, "raw": ce(ds.queries, bm25)}
    qids = list(ds.queries.ids)
    for w in WEIGHTS:
        runs[f"interp_{w:g}"] = fuse_runs([bm25, runs["raw"]], method="linear", norm="zscore",
                                          weights=[1 - w, w], qids=qids)
    from rankkit.evaluation import Evaluator

    evaluator = Evaluator(ds.qrels, ["nDCG@10"])     # built once for the 7 runs
    out = {}
    for name, run in runs.items():
        values = evaluator.per_query_matrix(run, qids)[0]
        out[name] = float(values.mean())
        if per_query is not None:
            per_query[name] = dict(zip(qids, values.tolist()))
    return out


def train_once(method: str, lr: float, steps: int, groups: list[Any], cfg: dict[str, Any], tag: str,
               save_steps: int, threads: int | None = None) -> Any:
    from rankkit.training.trainer import TrainOptions, train

    topts = {**(cfg.get("train") or {}), "steps": steps, "lr": lr, "save_steps": save_steps,
             "logging_steps": max(1, min(25, steps // 4)), "resume": True}
    if threads:   # else the recipe's (1): s/step is only comparable between methods run with the same
        topts["threads"] = threads
    folder = MODELS / f"{method}-{tag}"
    return train(groups, str(cfg["base_model"]), folder, method=method,
                 adapter_options=METHODS[method]["options"], max_length=int(cfg.get("max_length", 128)),
                 options=TrainOptions(**topts), checkpoint_dir=MODELS / f"{method}-{tag}.ckpt",
                 loss="softmax_ce")


def run_method(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """Sweep on dev, then the budget run and test evaluation, for one method (in this process)."""
    import random
    import shutil

    import torch

    from rankkit.quiet import quiet_transformers
    from rankkit.training.adapters import ADAPTERS
    from rankkit.training.config import build_groups

    quiet_transformers()
    cfg = recipe()
    torch.set_num_threads(int(args.threads or cfg["train"].get("threads") or 1))
    groups, summary = build_groups(cfg)
    random.Random(int(cfg["train"].get("seed", 42))).shuffle(groups)
    max_length = int(cfg.get("max_length", 128))
    dev, dev_bm25 = evaluation_set(summary.get("dev_qids", []), "train", args.queries)
    partial_file = OUT / f"{method}.partial.json"
    partial = read_json(partial_file) or {"sweep": {}}
    grid = METHODS[method]["grid"]
    # the grid's rates first, then past an edge while the best sits on it
    while (lr := next((r for r in grid if f"{r:g}" not in partial["sweep"]), None)
           or next_rate(grid, partial["sweep"])) is not None:
        key = f"{lr:g}"
        res = train_once(method, lr, args.sweep_steps, groups, cfg, f"sweep-{key}", save_steps=0,
                         threads=args.threads)
        partial["sweep"][key] = {"lr": lr, "dev": rerank_scores(res.folder, dev, dev_bm25, max_length),
                                 "final_loss": res.final_loss, "extension": lr not in grid}
        write_json(partial_file, partial)
        shutil.rmtree(res.folder, ignore_errors=True)
        shutil.rmtree(MODELS / f"{method}-sweep-{key}.ckpt", ignore_errors=True)
    # the full budget at the best sweep rate; a final run that scores lower on dev than its own
    # short sweep run did is unstable at that rate over the longer schedule, so the next-best
    # rate is trained too, and the final with the best dev nDCG@10 is the method's result
    test, test_bm25 = evaluation_set([], "test", args.queries)
    finals = partial.setdefault("finals", {})
    ranked = sorted(partial["sweep"].values(), key=lambda r: -r["dev"]["raw"])
    for cand in ranked[: 1 + MAX_FALLBACKS]:
        key = f"{cand['lr']:g}"
        if key not in finals:
            res = train_once(method, cand["lr"], args.steps, groups, cfg, f"final-{key}", save_steps=100,
                             threads=args.threads)
            shutil.rmtree(MODELS / f"{method}-final-{key}.ckpt", ignore_errors=True)  # the model folder stays
            manifest = json.loads((res.folder / "rankkit.json").read_text())
            per_query: dict[str, Any] = {}
            finals[key] = {
                "lr": cand["lr"], "dev": rerank_scores(res.folder, dev, dev_bm25, max_length),
                "test": rerank_scores(res.folder, test, test_bm25, max_length, per_query),
                "test_per_query": per_query, "steps": res.steps, "trainable": res.trainable,
                "total": res.total, "peak_rss_mb": res.peak_rss_mb, "s_per_step": res.seconds_per_step,
                "init_s": manifest.get("training", {}).get("adapter_init_seconds"),
                "final_loss": res.final_loss,
            }
            write_json(partial_file, partial)
        if finals[key]["dev"]["raw"] >= cand["dev"]["raw"] - UNSTABLE_DROP:
            break
    chosen = max(finals.values(), key=lambda r: r["dev"]["raw"])
    weight = max(WEIGHTS, key=lambda w: chosen["dev"][f"interp_{w:g}"])   # on dev, for the chosen final
    scores = chosen["test"]
    cfg_train = cfg["train"]
    return {
        "method": method, "doc": ADAPTERS[method].doc, "options": METHODS[method]["options"],
        "lr_grid": sorted(float(r["lr"]) for r in partial["sweep"].values()), "base_grid": grid,
        "sweep_steps": args.sweep_steps, "sweep": partial["sweep"],
        "finals": {k: {x: v for x, v in f.items() if x != "test_per_query"} for k, f in finals.items()},
        "lr": chosen["lr"], "interpolation_weight": weight, "steps": chosen["steps"],
        "pairs_per_step": int(cfg_train["batch_size"]) * int(cfg_train["group_size"]),
        "trainable": chosen["trainable"], "total": chosen["total"],
        "trainable_pct": 100 * chosen["trainable"] / chosen["total"],
        "peak_rss_mb": chosen["peak_rss_mb"],
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "s_per_step": chosen["s_per_step"], "init_s": chosen["init_s"], "final_loss": chosen["final_loss"],
        "dev_queries": len(dev.queries), "test_queries": len(test.queries),
        "ndcg10_bm25": scores["bm25"], "ndcg10_raw": scores["raw"],
        "ndcg10_interp": scores[f"interp_{weight:g}"], "test_all_weights": scores,
        "test_per_query": {"raw": chosen["test_per_query"]["raw"],
                           "interp": chosen["test_per_query"][f"interp_{weight:g}"]},
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# ------------------------------------------------------------------------- report
def load_results() -> list[dict[str, Any]]:
    rows = [read_json(p) for p in sorted(OUT.glob("*.json")) if not p.name.endswith(".partial.json")]
    return sorted((r for r in rows if r and "method" in r), key=lambda r: r["trainable"])


def p_vs(row: dict[str, Any], base: dict[str, Any] | None, condition: str) -> str:
    """Two-sided paired t-test p of ``row`` against ``base`` over the test queries ("-" without both)."""
    if base is None or row is base or "test_per_query" not in row or "test_per_query" not in base:
        return "-"
    import numpy as np

    from rankkit.evaluation import paired_test

    a, b = row["test_per_query"][condition], base["test_per_query"][condition]
    qids = sorted(set(a) & set(b))
    return f"{paired_test(np.array([a[q] for q in qids]), np.array([b[q] for q in qids])):.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the finished methods (fewest trainable parameters first)."""
    lora = next((r for r in rows if r["method"] == "lora"), None)
    head = ("| method | trainable | x fewer than LoRA | lr (grid) | s/step | init s | peak MB | "
            "nDCG@10 raw | p vs LoRA | nDCG@10 interp (w) | p vs LoRA |\n"
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        fewer = f"{lora['trainable'] / r['trainable']:.0f}" if lora else "-"
        grid = "/".join(f"{x:g}" for x in r["lr_grid"])
        lines.append(f"| {r['method']} | {r['trainable']:,} | {fewer} | {r['lr']:g} ({grid}) | "
                     f"{r['s_per_step']:.2f} | {r.get('init_s') or 0:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['ndcg10_raw']:.4f} | {p_vs(r, lora, 'raw')} | "
                     f"{r['ndcg10_interp']:.4f} ({r['interpolation_weight']:g}) | {p_vs(r, lora, 'interp')} |")
    if rows:
        r = rows[0]
        lines.append(f"\nBM25 top-20 alone: nDCG@10 {r['ndcg10_bm25']:.4f} on {r['test_queries']} SciFact test "
                     f"queries; {r['steps']} steps of {r['pairs_per_step']} pairs; sweep {r['sweep_steps']} steps "
                     f"per rate on {r['dev_queries']} dev queries.")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path = FIGURE) -> None:
    """nDCG@10 (raw: filled, interpolated: hollow) against trainable parameters, log x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rankkit.io import atomic_path

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in rows:
        ax.scatter(r["trainable"], r["ndcg10_raw"], color="C0")
        ax.scatter(r["trainable"], r["ndcg10_interp"], facecolors="none", edgecolors="C1")
        ax.annotate(r["method"], (r["trainable"], r["ndcg10_raw"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    if rows:
        ax.axhline(rows[0]["ndcg10_bm25"], color="grey", linestyle="--", linewidth=1, label="BM25 top-20")
    ax.scatter([], [], color="C0", label="reranked (raw)")
    ax.scatter([], [], facecolors="none", edgecolors="C1", label="interpolated with BM25")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("SciFact test nDCG@10")
    ax.set_title("Adapter methods on the MiniLM-L6 reranker, one training budget")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def report() -> None:
    rows = load_results()
    if not rows:
        print("no finished method yet")
        return
    text = table(rows)
    from rankkit.io import atomic_path

    with atomic_path(OUT / "table.md") as fh:
        fh.write(text)
    plot(rows)
    print(text)
    print(f"table: {OUT / 'table.md'}\nplot: {FIGURE}")


# ------------------------------------------------------------------------- driver
def stale(method: str, result: dict[str, Any]) -> str | None:
    """Why a finished result no longer stands under the current protocol, or None."""
    if next_rate(METHODS[method]["grid"], result["sweep"]) is not None:
        return f"its best rate {result['lr']:g} is on an edge of the sweep"
    if "finals" not in result:
        return "its final run was not checked on dev for stability at the full budget"
    return None


def reopen(method: str, why: str) -> None:
    """A finished result that no longer stands: keep its sweep points, retire the result."""
    done = OUT / f"{method}.json"
    old = read_json(done)
    partial_file = OUT / f"{method}.partial.json"
    if not partial_file.exists():
        write_json(partial_file, {"sweep": old["sweep"], "finals": old.get("finals", {})})
    (OUT / "superseded").mkdir(exist_ok=True)
    done.replace(OUT / "superseded" / f"{method}.json")
    print(f"{method}: {why}; re-opened (old result in {OUT / 'superseded'})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    ap.add_argument("--steps", type=int, default=300, help="training budget per method (recipe batch)")
    ap.add_argument("--sweep-steps", type=int, default=100, help="steps per learning rate of the sweep")
    ap.add_argument("--queries", type=int, default=None, help="evaluate only the first N dev/test queries")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for training and scoring (default: the recipe's, 1; keep it the same "
                         "for every method, s/step is compared)")
    ap.add_argument("--report", action="store_true", help="only build the table and plot")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run_method(args.child, args), default=str), flush=True)
        return
    if not args.report:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise SystemExit(f"unknown method(s) {unknown} (choose {', '.join(METHODS)})")
        failed: list[str] = []
        for m in methods:
            done = OUT / f"{m}.json"
            if done.exists() and (why := stale(m, read_json(done))):
                reopen(m, why)
            if done.exists():
                print(f"{m}: done ({done}), skipped", flush=True)
                continue
            print(f"{m}: sweep {METHODS[m]['grid']} x {args.sweep_steps} steps, then {args.steps} steps",
                  flush=True)
            t0 = time.perf_counter()
            cmd = [sys.executable, __file__, "--child", m, "--steps", str(args.steps),
                   "--sweep-steps", str(args.sweep_steps)]
            cmd += ["--queries", str(args.queries)] if args.queries else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                failed.append(m)
                print(f"{m}: FAILED (exit {proc.returncode}); the others go on, rerun to resume", flush=True)
                continue
            result = {**json.loads(line[-1][7:]), "wall_s": time.perf_counter() - t0}
            write_json(done, result)
            (OUT / f"{m}.partial.json").unlink(missing_ok=True)
            print(f"{m}: nDCG@10 raw {result['ndcg10_raw']:.4f}, interpolated {result['ndcg10_interp']:.4f}, "
                  f"{result['trainable']:,} trainable, {result['wall_s'] / 60:.1f} min", flush=True)
        report()
        if failed:
            raise SystemExit(f"failed: {', '.join(failed)}")
        return
    report()


if __name__ == "__main__":
    main()
