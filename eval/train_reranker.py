"""Full fine-tuning vs LoRA vs other peft adapters, on one budget, in one run.

    PYTHONPATH=. python eval/train_reranker.py --methods full,lora,ia3,vera --steps 12

Every method trains the same MiniLM-L6 cross-encoder (all-MiniLM-L6-v2 backbone,
new single-logit head) on the same SciFact-train groups (BM25 hard negatives,
same seed, same order) for the same number of steps, each in its own process
so peak memory (max RSS) is per method. It reports trainable parameters,
peak memory, seconds per step and nDCG@10 of reranking the BM25 top ``--k``
on (a subset of) SciFact test. The budget is deliberately small on a 2-core
CPU; the figures compare methods, they are not the recipe's quality.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "eval" / "out"


def _tail_mean(losses: list[float], n: int = 20) -> float | None:
    """Mean of the last ``n`` logged losses (one step's loss is too noisy to compare methods)."""
    return sum(losses[-n:]) / len(losses[-n:]) if losses else None


def method_lr(args: argparse.Namespace) -> float:
    """--lrs "ia3=3e-3,vera=5e-3" overrides; else --lr-full for full fine-tuning, --lr for adapters."""
    table = dict(kv.split("=") for kv in args.lrs.split(",") if kv)
    if args.method in table:
        return float(table[args.method])
    return args.lr_full if args.method == "full" else args.lr


def one(args: argparse.Namespace) -> dict:
    """Train + evaluate one method (runs in a child process)."""
    import resource

    import torch

    sys.path.insert(0, str(ROOT / "eval"))
    import rerank_scifact as rs

    import rankkit as rk
    from rankkit.training.data import groups_from_dataset, split_queries
    from rankkit.training.trainer import TrainOptions, train

    torch.set_num_threads(args.threads)
    train_ds = rs.dataset("train")
    train_q, _ = split_queries(list(train_ds.qrels), 0.1, 0)
    groups, _ = groups_from_dataset(train_ds, rk.BM25.build(train_ds.corpus), num_negatives=args.group_size - 1,
                                    depth=50, qids=train_q, seed=0, cache_dir=rs.CACHE)
    import random

    random.Random(0).shuffle(groups)
    options = json.loads(args.options) if args.options else {}
    opts = TrainOptions(steps=args.steps, batch_size=args.batch_size, group_size=args.group_size,
                        lr=method_lr(args), seed=42, bf16=True,
                        threads=args.threads, logging_steps=1, warmup_ratio=0.1, resume=False)
    folder = OUT / "compare" / args.method
    res = train(groups, "minilm", folder, method=args.method, adapter_options=options, loss="softmax_ce",
                max_length=args.max_length, options=opts, checkpoint_dir=OUT / "compare" / f"{args.method}.ckpt")
    test = rs.dataset("test")
    qids = test.queries.ids[: args.queries]
    test = rk.Dataset(test.corpus, test.queries.subset(qids), test.qrels.subset(qids))
    bm25 = rs.bm25_run(rs.dataset("test"), 100).subset(qids).top(args.k)
    ce = rk.CrossEncoder(folder, corpus=test.corpus, max_length=args.max_length, dtype="bfloat16",
                         batch_size=32, show_progress=False)
    reranked = ce(test.queries, bm25)
    return {"method": args.method, "options": options, "lr": method_lr(args), "trainable": res.trainable, "total": res.total,
            "trainable_pct": 100 * res.trainable / res.total, "steps": res.steps,
            "s_per_step": res.seconds_per_step, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "final_loss": _tail_mean([h["loss"] for h in res.log_history if "loss" in h]),
            "ndcg10": rk.evaluate(reranked, test.qrels, ["nDCG@10"])["nDCG@10"],
            "bm25_ndcg10": rk.evaluate(bm25, test.qrels, ["nDCG@10"])["nDCG@10"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="full,lora,ia3,vera")
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--options", default="", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-full", type=float, default=5e-5)
    ap.add_argument("--lrs", default="", help='per-method learning rates, e.g. "ia3=3e-3,vera=5e-3"')
    ap.add_argument("--queries", type=int, default=50, help="SciFact test queries evaluated")
    ap.add_argument("--k", type=int, default=20, help="BM25 candidates reranked per query")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.method:
        print("RESULT " + json.dumps(one(args)), flush=True)
        return
    method_options = {"lora": {"r": 16, "lora_alpha": 32, "target_modules": ["query", "key", "value", "dense"]}}
    rows = []
    for m in args.methods.split(","):
        cmd = [sys.executable, __file__, "--method", m, "--options", json.dumps(method_options.get(m, {})),
               *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k not in ("methods", "method", "options"))]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"method {m} failed")
        rows.append(json.loads(line[-1][7:]))
        print(json.dumps(rows[-1]), flush=True)
    head = f"{'method':10} {'lr':>8} {'trainable':>10} {'%':>7} {'peak MB':>8} {'s/step':>7} {'loss':>6} {'nDCG@10':>8}"
    print(head)
    for r in rows:
        print(f"{r['method']:10} {r['lr']:>8.0e} {r['trainable']:>10} {r['trainable_pct']:>7.2f} "
              f"{r['peak_rss_mb']:>8.0f} {r['s_per_step']:>7.2f} {r['final_loss'] or 0:>6.3f} {r['ndcg10']:>8.4f}")
    print(f"BM25 top-{args.k} on the same {args.queries} queries: nDCG@10 {rows[0]['bm25_ndcg10']:.4f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train_reranker.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
