"""Rank-R1 on SciFact test: SmolLM2-135M zero-shot vs after the SFT warm-up vs after GRPO, against BM25.

    PYTHONPATH=. python eval/rank_r1.py                 # the documented run (resumable: rerun to continue)
    PYTHONPATH=. python eval/rank_r1.py --queries 2 --sft-steps 2 --grpo-steps 2 --max-new-tokens 8 \
        --out /tmp/rank_r1_smoke                        # a smoke run

Fixed subset: SciFact test queries sorted by query id (as strings), the first
``--queries`` (default 8); candidates: BM25 top ``--k`` (20). Each system
reranks them with a setwise ``--sort`` (heap) over sets of ``--set-size`` (4),
sorting the top ``--top-k`` (5); prompts are prefilled with ``<think>``.
The defaults fit about 50 minutes on 2 shared CPU cores (SmolLM2 prefills about
60-70 tokens/s there, so prompt length is the budget): the ``compact`` prompt
(``--prompt rank-r1`` is the paper's wording, ~150 tokens longer), passages cut
to 16 tokens, GRPO with 2 completions per set. Measured in the smoke run (CPU
shared with ~3x as many busy threads as cores): a model load ~2 min, one SFT step
(2 sets) 36 s, one setwise round of 2 prompts ~28 s; without that contention
expect roughly 3x faster, i.e. about 35-45 minutes for the defaults.
Training (inside this script, recipe ``configs/rank-r1-smollm2-scifact.yaml``
with the step counts from the command line): SciFact *train* queries only.

Phases, each saved under ``--out`` (default eval/out/rank_r1/) and skipped
when its result exists: bm25, zero_shot, train (adapters/sft, adapters/grpo),
sft, grpo, report. Reported (eval/out/rank_r1.json and a markdown block for
eval/RESULTS.md): parse success rate and parse-failure counts, mean reward per
GRPO step (plotted to eval/figures/rank_r1_reward.png), nDCG@10 with paired
t-tests vs BM25 (and GRPO vs SFT), LLM calls (comparisons, generate calls,
generated tokens) and wall time per query, and every GRPO option used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "eval"))

from _scifact import SCIFACT, write_report  # noqa: E402

import rankkit as rk  # noqa: E402
from rankkit.evaluation import paired_test  # noqa: E402

RECIPE = ROOT / "configs" / "rank-r1-smollm2-scifact.yaml"


def subset(ds: rk.Dataset, n: int) -> rk.Dataset:
    """The first ``n`` judged test queries by query id (the documented fixed subset)."""
    qids = sorted(q for q in ds.queries if q in ds.qrels)[:n]
    return rk.Dataset(ds.corpus, ds.queries.subset(qids), ds.qrels.subset(qids), name=f"scifact/test[:{n}]")


def save_json(path: Path, obj: Any) -> None:
    from rankkit.io import atomic_path

    with atomic_path(path) as f:
        f.write(json.dumps(obj, indent=1, default=str))


def rerank_phase(name: str, out: Path, ds: rk.Dataset, bm25: rk.Run, args: argparse.Namespace,
                 adapter: Path | None) -> dict[str, Any]:
    """Rerank the subset with one system (skipped if its result file exists); the record with the run."""
    done = out / f"{name}.json"
    if done.exists():
        print(f"[{name}] done earlier, reusing {done}", file=sys.stderr)
        return json.loads(done.read_text())
    rr = rk.RankR1Reranker(args.model, corpus=ds.corpus, adapter=adapter, set_size=args.set_size,
                           top_k=args.top_k, max_new_tokens=args.max_new_tokens, sort=args.sort,
                           max_passage_tokens=args.max_passage_tokens, batch_size=args.batch_size,
                           prompt=args.prompt, show_progress=not args.quiet)
    t0 = time.perf_counter()
    run = rr(ds.queries, bm25)
    wall = time.perf_counter() - t0
    n = len(ds.queries)
    rec = {"system": name, "adapter": None if adapter is None else str(adapter), "wall_s": wall,
           "wall_s_per_query": wall / n, "comparisons_per_query": rr.stats["comparisons"] / n,
           "generate_calls": rr.stats["generate_calls"], "generated_tokens_per_query": rr.stats["generated_tokens"] / n,
           "parse_success_rate": rr.parse_success_rate(), "parse": rr.stats["parse"],
           "passages_truncated": rr.stats["passages_truncated"], "params": rr.params(),
           "run": {q: run.docids(q).tolist() for q in run.qids},
           "reasoning_examples": {q: recs[:2] for q, recs in list(run.extras["reasoning"].items())[:3]}}
    save_json(done, rec)
    print(f"[{name}] {wall:.0f} s, parse ok {rec['parse_success_rate']:.2f}, {rr.stats['comparisons']} comparisons",
          file=sys.stderr, flush=True)
    return rec


def as_run(rec: dict[str, Any]) -> rk.Run:
    """The saved order as a Run (score = n - rank)."""
    return rk.Run({q: (np.array(d, dtype=object), -np.arange(len(d), dtype=float)) for q, d in rec["run"].items()})


def plot_rewards(steps: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not steps:
        return
    x = np.array([s for s, _ in steps])
    y = np.array([r for _, r in steps])
    w = max(1, min(10, len(y) // 5))
    smooth = np.convolve(y, np.ones(w) / w, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, y, ".", alpha=0.5, label="mean reward per step")
    ax.plot(x[w - 1:], smooth, "-", label=f"moving average ({w} steps)")
    ax.set_xlabel("GRPO optimisation step")
    ax.set_ylabel("reward (0.5 x format + relevance)")
    ax.set_title("Rank-R1 GRPO on SmolLM2-135M (SciFact train)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=8, help="first N judged test queries by id")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--k", type=int, default=20, help="rerank BM25's top k")
    ap.add_argument("--set-size", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--sort", default="heap", choices=["heap", "bubble"])
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--max-passage-tokens", type=int, default=16)
    ap.add_argument("--prompt", default="compact", choices=["rank-r1", "compact"])
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per generate batch")
    ap.add_argument("--train-queries", type=int, default=None, help="override the recipe's data.queries")
    ap.add_argument("--sft-steps", type=int, default=16)
    ap.add_argument("--grpo-steps", type=int, default=50)
    ap.add_argument("--max-completion-length", type=int, default=None, help="override grpo.max_completion_length")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "eval" / "out" / "rank_r1"), help="phase folder")
    ap.add_argument("--report", default=None, help="JSON report (default eval/out/rank_r1.json; "
                                                   "beside --out when --out is given)")
    ap.add_argument("--figure", default=None, help="reward plot (default eval/figures/rank_r1_reward.png)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.sft_steps < 1 or args.grpo_steps < 1:
        ap.error("--sft-steps and --grpo-steps must be >= 1 (the three systems need both phases)")

    import torch

    from rankkit.training.data import cached_run
    from rankkit.training.rank_r1_recipe import load_recipe, run_recipe

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    default_out = out == ROOT / "eval" / "out" / "rank_r1"
    report_path = Path(args.report) if args.report else (ROOT / "eval" / "out" / "rank_r1.json" if default_out
                                                         else out / "rank_r1.json")
    figure = Path(args.figure) if args.figure else (ROOT / "eval" / "figures" / "rank_r1_reward.png"
                                                    if default_out else out / "rank_r1_reward.png")
    t_start = time.perf_counter()
    ds = subset(rk.datasets.load_beir(SCIFACT, split="test"), args.queries)
    bm25 = cached_run(rk.BM25.build(ds.corpus), ds.queries, ROOT / "eval" / "cache", ds.corpus.fingerprint(),
                      k=args.k)

    # ---- zero-shot
    records = {"zero_shot": rerank_phase("zero_shot", out, ds, bm25, args, None)}
    # ---- training (SciFact train only): SFT warm-up then GRPO; finished phases are skipped
    cfg = load_recipe(RECIPE)
    cfg["output_dir"] = str(out / "adapters")
    cfg["threads"] = args.threads
    cfg["max_passage_tokens"] = args.max_passage_tokens
    cfg["base_model"] = args.model
    cfg["prompt"] = args.prompt
    cfg["data"]["set_size"] = args.set_size
    cfg["data"]["path"] = str(SCIFACT)          # honours RANKKIT_SHARED_DATA, as the test subset does
    if args.train_queries:
        cfg["data"]["queries"] = args.train_queries
    cfg["sft"] = {**cfg["sft"], "steps": args.sft_steps}
    cfg["grpo"] = {**cfg["grpo"], "steps": args.grpo_steps}
    if args.max_completion_length:
        cfg["grpo"]["max_completion_length"] = args.max_completion_length
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):        # trainer log lines: stdout keeps only the markdown block
        trained = run_recipe(cfg, progress=not args.quiet)
    train_wall = time.perf_counter() - t0
    # ---- trained systems
    records["sft"] = rerank_phase("sft", out, ds, bm25, args, Path(trained["sft"]["folder"]))
    records["grpo"] = rerank_phase("grpo", out, ds, bm25, args, Path(trained["grpo"]["folder"]))

    # ---- report
    qids = list(ds.queries)
    runs = {"bm25": bm25, **{n: as_run(r) for n, r in records.items()}}
    per_query = {}
    for n, run in runs.items():
        pq = rk.evaluate(run, ds.qrels, ["nDCG@10"], per_query=True)
        per_query[n] = np.array([pq.get(q, {}).get("nDCG@10", 0.0) for q in qids])
    ndcg = {n: float(v.mean()) for n, v in per_query.items()}
    tests = {f"{n} vs bm25": paired_test(per_query[n], per_query["bm25"]) for n in records}
    tests["grpo vs sft"] = paired_test(per_query["grpo"], per_query["sft"])
    rewards = trained["grpo"]["reward_per_step"]
    plot_rewards(rewards, figure)
    k = max(1, len(rewards) // 5)
    first_mean = float(np.mean([r for _, r in rewards[:k]])) if rewards else float("nan")
    last_mean = float(np.mean([r for _, r in rewards[-k:]])) if rewards else float("nan")
    grpo_manifest = trained["grpo"]["manifest"] or {}
    report = {
        "subset": f"SciFact test, first {len(qids)} judged query ids (sorted as strings), BM25 top-{args.k}",
        "queries": len(qids), "k": args.k, "set_size": args.set_size, "top_k": args.top_k, "sort": args.sort,
        "max_new_tokens": args.max_new_tokens, "max_passage_tokens": args.max_passage_tokens,
        "prompt": args.prompt, "threads": args.threads, "model": args.model, "ndcg@10": ndcg, "paired_t_p": tests,
        "systems": {n: {k2: v for k2, v in r.items() if k2 != "run"} for n, r in records.items()},
        "training": {"data": trained.get("data"), "train_wall_s_this_run": train_wall,
                     "sft_manifest": trained["sft"]["manifest"], "grpo_manifest": grpo_manifest,
                     "grpo_options": grpo_manifest.get("grpo"),
                     "reward_per_step": rewards, "reward_first_fifth": first_mean,
                     "reward_last_fifth": last_mean},
        "total_wall_s_this_run": time.perf_counter() - t_start, "figure": str(figure),
    }
    write_report(report, report_path)
    print(markdown(report))
    print(f"-> {report_path}", file=sys.stderr)


def markdown(r: dict[str, Any]) -> str:
    """The block for eval/RESULTS.md."""
    g = r["training"]["grpo_options"] or {}
    lines = [f"### Rank-R1 (setwise reasoning reranker, GRPO) on {r['subset']}", "",
             f"SmolLM2-135M-Instruct, {r['sort']} sort over sets of {r['set_size']}, top {r['top_k']} sorted, "
             f"{r.get('prompt')} prompt, `<think>` prefilled, max_new_tokens {r['max_new_tokens']}, passages cut to "
             f"{r['max_passage_tokens']} tokens, {r['threads']} CPU threads.", "",
             "| system | nDCG@10 | p vs BM25 (paired t) | parse ok | comparisons/query | generated tokens/query | s/query |",
             "|---|---|---|---|---|---|---|",
             f"| BM25 | {r['ndcg@10']['bm25']:.4f} | | | | | |"]
    for n in ("zero_shot", "sft", "grpo"):
        s = r["systems"][n]
        lines.append(f"| {n} | {r['ndcg@10'][n]:.4f} | {r['paired_t_p'][f'{n} vs bm25']:.3g} | "
                     f"{s['parse_success_rate']:.2f} | {s['comparisons_per_query']:.1f} | "
                     f"{s['generated_tokens_per_query']:.0f} | {s['wall_s_per_query']:.1f} |")
    t = r["training"]
    lines += ["", f"GRPO vs SFT: p = {r['paired_t_p']['grpo vs sft']:.3g}. Mean reward per GRPO step: first fifth "
              f"{t['reward_first_fifth']:.3f} -> last fifth {t['reward_last_fifth']:.3f} over "
              f"{len(t['reward_per_step'])} steps ({r['figure']}).",
              "GRPO (trl " + str((t["grpo_manifest"] or {}).get("trl_version")) + "): " +
              ", ".join(f"{k}={v}" for k, v in g.items()), ""]
    for n in ("zero_shot", "sft", "grpo"):
        lines.append(f"- parse outcomes {n}: {r['systems'][n]['parse']}")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
