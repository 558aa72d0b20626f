"""Dense retriever training on SciFact (issue 17): untrained MiniLM vs trained, then the hybrid.

Systems (``--systems``, in this order):

- ``untrained``: all-MiniLM-L6-v2 as shipped (flat index, cached in eval/cache/);
- ``lora-static``: LoRA (r=16, all linear layers) on SciFact train, BM25 hard negatives mined once;
- ``lora-dynamic``: the same, negatives re-mined from the model being trained every
  ``--refresh-every`` steps (ADORE);
- ``full``: full fine-tuning, BM25 static negatives;
- ``hybrid``: BM25 + the best trained dense run (and + untrained dense, for reference), RRF k=60.

Every trained system uses the shipped cross-encoder ``minilm-scifact`` as the
false-negative guard, the same seed, batch and steps; its folder is then
re-encoded into a flat index and the test queries searched (top 100). Each
system's result (``eval/out/train_retriever/<system>.json`` and ``.trec``) is
written atomically and skipped when present, so an interrupted run resumes;
a trained model folder without its result is re-used, not re-trained.
Paired t-tests (Holm) of every system against ``untrained``.

    PYTHONPATH=. python eval/train_retriever.py                # full run, about 50-60 min on 2 free cores
    PYTHONPATH=. python eval/train_retriever.py --smoke --threads 1   # 50 docs, 3 steps: ~1.5 min

Timing, measured on this machine's 2 cores while another benchmark ran (1 thread:
25 s/step at batch 32, 1 hard negative, 128-token window; 6.6 docs/s encoding),
scaled to 2 free cores: ~7 s/step, so 80 steps ~10 min per trained system; the
corpus encode of 5,183 abstracts ~3.5 min per trained system (and for
``untrained`` unless eval/cache/ holds it); one dynamic refresh ~2 min (re-encode
at the 128-token window); the teacher scores ~3k pairs once (~2 min, shared by
all systems). ``--steps 60`` trims ~7 min.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _scifact import ROOT, SCIFACT, cached_dense, limit_threads, peak_rss_mb

OUT = ROOT / "eval" / "out" / "train_retriever"
DEPTH = 100
MEASURES = ["nDCG@10", "R@100"]
SYSTEMS = ["untrained", "lora-static", "lora-dynamic", "full", "hybrid"]
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query", "key", "value", "dense"]}


def subset(train, test, docs: int, train_queries: int, test_queries: int, seed: int = 0):
    """Smaller collections over one corpus: the judged documents of the kept queries + random fill."""
    import numpy as np

    import rankkit as rk

    tq, sq = train.queries.ids[:train_queries], test.queries.ids[:test_queries]
    keep = {d for q in tq for d in train.qrels[q]} | {d for q in sq for d in test.qrels[q]}
    keep = {d for d in keep if d in test.corpus}
    rng = np.random.default_rng(seed)
    rest = [d for d in test.corpus.ids if d not in keep]
    keep |= set(rng.choice(rest, size=max(0, min(len(rest), docs - len(keep))), replace=False).tolist())
    corpus = test.corpus.subset(sorted(keep))
    return (rk.Dataset(corpus, train.queries.subset(tq), train.qrels.subset(tq)),
            rk.Dataset(corpus, test.queries.subset(sq), test.qrels.subset(sq)))


def save_result(name: str, run, result: dict) -> None:
    """The system's run (TREC) and result (JSON), each written atomically."""
    from rankkit.io import atomic_path

    OUT.mkdir(parents=True, exist_ok=True)
    with atomic_path(OUT / f"{name}.trec") as f:
        for qid in run.qids:
            for rank, (doc, score) in enumerate(run[qid], 1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {name}\n")
    with atomic_path(OUT / f"{name}.json") as f:
        json.dump({**result, "date": time.strftime("%Y-%m-%d %H:%M")}, f, indent=2)


def load_result(name: str):
    import rankkit as rk

    js, trec = OUT / f"{name}.json", OUT / f"{name}.trec"
    if js.exists() and trec.exists():
        return rk.Run.read_trec(trec, name=name), json.loads(js.read_text())
    return None


_GUARD: list = []


def _guard(args):
    """One false-negative guard for every system: teacher scores of a (query, doc) pair are computed once."""
    if args.teacher in ("none", ""):
        return None
    if not _GUARD:
        from rankkit.rerankers.cross_encoder import CrossEncoder
        from rankkit.training.retriever_data import FalseNegativeGuard

        teacher = CrossEncoder(args.teacher, max_length=256, show_progress=not args.quiet)
        _GUARD.append(FalseNegativeGuard(teacher, 0.0, name=args.teacher))
    return _GUARD[0]


def train_system(name: str, args, train, test) -> tuple:
    """Train (or re-use) one system's retriever, index the corpus with it, search the test queries."""
    import rankkit as rk
    from rankkit.training.retriever import train_retriever
    from rankkit.training.retriever_config import NegativesOptions, RetrieverTrainOptions

    folder = OUT / "models" / name
    info: dict = {"system": name}
    if not (folder / "rankkit.json").exists():
        dynamic = name == "lora-dynamic"
        neg = NegativesOptions(mine_from="bm25", num_negatives=args.num_negatives, depth=args.depth,
                               refresh_every=args.refresh_every if dynamic else 0,
                               teacher=args.teacher, seed=0)
        opts = RetrieverTrainOptions(steps=args.steps, batch_size=args.batch_size,
                                     lr=args.lr_full if name == "full" else args.lr,
                                     max_seq_length=args.max_len, logging_steps=max(1, args.steps // 10),
                                     threads=args.threads, show_progress=not args.quiet, seed=42)
        res = train_retriever(train, folder, base_model="minilm", method="full" if name == "full" else "lora",
                              adapter_options=None if name == "full" else LORA, negatives=neg,
                              options=opts, cache_dir=ROOT / "eval" / "cache", teacher=_guard(args))
        info.update(train_seconds=round(res.seconds, 1), steps=res.steps,
                    s_per_step=round(res.seconds / max(1, res.steps), 2), trainable=res.trainable,
                    total=res.total, examples=res.examples, final_loss=res.final_loss,
                    losses=res.losses, mining=res.mining)
    else:
        manifest = json.loads((folder / "rankkit.json").read_text())
        done = manifest["training"]
        info.update(reused_model=True, steps=done.get("steps"), train_seconds=done.get("seconds"),
                    mining=done.get("mining"), final_loss=done.get("final_loss"))
    t0 = time.perf_counter()
    dense = rk.DenseRetriever.build(test.corpus, model=str(folder), batch_size=32,
                                    show_progress=not args.quiet)
    info["encode_seconds"] = round(time.perf_counter() - t0, 1)
    run = (dense % DEPTH)(test.queries)
    return run, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SCIFACT))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-negatives", type=int, default=1)
    ap.add_argument("--depth", type=int, default=30, help="negatives sampled from this top of the ranking")
    ap.add_argument("--refresh-every", type=int, default=40, help="re-mining period of lora-dynamic")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lr-full", type=float, default=2e-5)
    ap.add_argument("--max-len", type=int, default=128, help="training/mining window (evaluation: 256)")
    ap.add_argument("--teacher", default="minilm-scifact", help="false-negative guard; 'none' = off")
    ap.add_argument("--queries", type=int, default=0, help="test queries (0 = all 300)")
    ap.add_argument("--train-queries", type=int, default=0, help="train queries (0 = all)")
    ap.add_argument("--docs", type=int, default=0, help="corpus subset: judged docs + random fill (0 = all)")
    ap.add_argument("--smoke", action="store_true", help="--docs 50 --queries 10 --train-queries 20 --steps 3 "
                    "--batch-size 4 --refresh-every 2 into eval/out/train_retriever_smoke/")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    global OUT
    if args.smoke:
        args.docs, args.queries, args.train_queries = 50, 10, 20
        args.steps, args.batch_size, args.refresh_every = 3, 4, 2
        OUT = ROOT / "eval" / "out" / "train_retriever_smoke"
    limit_threads(args.threads)
    import rankkit as rk

    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s) {sorted(unknown)} (choose {', '.join(SYSTEMS)})")
    train = rk.datasets.load_beir(args.data, split="train")
    test = rk.datasets.load_beir(args.data, split="test")
    if args.docs or args.queries or args.train_queries:
        train, test = subset(train, test, args.docs or len(test.corpus), args.train_queries or len(train.queries),
                             args.queries or len(test.queries))
    print(f"corpus {len(test.corpus)} docs, train {len(train.queries)} queries, test {len(test.queries)}",
          flush=True)

    runs, results = {}, {}
    for name in [s for s in SYSTEMS if s in systems and s != "hybrid"]:
        done = load_result(name)
        if done is not None:
            runs[name], results[name] = done
            print(f"{name}: done before ({results[name]['date']}), skipped", flush=True)
            continue
        t0 = time.perf_counter()
        if name == "untrained":
            if args.docs:
                dense = rk.DenseRetriever.build(test.corpus, model="minilm", show_progress=not args.quiet)
                info = {"system": name, "cached": False}
            else:
                dense, build = cached_dense(test.corpus, "minilm", name=Path(args.data).name,
                                            show_progress=not args.quiet)
                info = {"system": name, "index": build}
            run = (dense % DEPTH)(test.queries)
        else:
            run, info = train_system(name, args, train, test)
        info.update(rk.evaluate(run, test.qrels, MEASURES), seconds=round(time.perf_counter() - t0, 1),
                    peak_rss_mb=round(peak_rss_mb()), args=vars(args))
        save_result(name, run, info)
        runs[name], results[name] = run, json.loads((OUT / f"{name}.json").read_text())
        print(f"{name}: {', '.join(f'{m} {info[m]:.4f}' for m in MEASURES)} ({info['seconds']:.0f}s)",
              flush=True)

    trained = [n for n in ("lora-static", "lora-dynamic", "full") if n in runs]
    best = max(trained, key=lambda n: results[n]["nDCG@10"]) if trained else None
    if "hybrid" in systems and best:
        bm25 = (rk.BM25.build(test.corpus) % DEPTH)(test.queries)
        runs["bm25"] = bm25
        runs[f"hybrid bm25+{best}"] = rk.fuse_runs([bm25, runs[best]], method="rrf", rrf_k=60, k=DEPTH)
        if "untrained" in runs:
            runs["hybrid bm25+untrained"] = rk.fuse_runs([bm25, runs["untrained"]], method="rrf",
                                                         rrf_k=60, k=DEPTH)
    if "untrained" not in runs or len(runs) < 2:
        return
    cmp = rk.compare(runs, test, MEASURES, baseline="untrained")
    print(f"\nSciFact test ({len(test.queries)} queries), paired t-test vs untrained (Holm):\n{cmp.table()}")
    from rankkit.io import atomic_path

    with atomic_path(OUT / "summary.json") as f:
        json.dump({"best_trained": best, "comparison": cmp.to_dict(),
                   "systems": {n: {k: v for k, v in r.items() if k != "losses"} for n, r in results.items()}},
                  f, indent=2, default=str)
    print("\n--- markdown for eval/RESULTS.md ---")
    print(f"### Dense retriever training on SciFact (issue 17)\n\nMiniLM-L6 bi-encoder, SciFact train "
          f"({len(train.queries)} queries), {args.steps} steps of batch {args.batch_size} "
          f"(MultipleNegativesRankingLoss: in-batch + {args.num_negatives} BM25 hard negative(s) from the top "
          f"{args.depth}, false negatives dropped by `{args.teacher}`), lr {args.lr} (LoRA) / {args.lr_full} "
          f"(full); lora-dynamic re-mines from the model every {args.refresh_every} steps. SciFact test "
          f"({len(test.queries)} queries, {len(test.corpus)} docs), top {DEPTH}; p: paired t-test vs "
          f"untrained, Holm.\n")
    print("| system | nDCG@10 | p | R@100 | p | train s | s/step | dropped false negatives |")
    print("|---|---|---|---|---|---|---|---|")
    for name in runs:
        r = results.get(name, {})
        row = [name]
        for m in MEASURES:
            p = cmp.pvalues.get(name, {}).get(m)
            row += [f"{cmp.means[name][m]:.4f}", "-" if p is None else f"{p:.3g}"]
        dropped = sum(x.get("false_negatives", 0) for x in r.get("mining") or [])
        row += [str(r.get("train_seconds", "-")), str(r.get("s_per_step", "-")),
                str(dropped) if r.get("mining") else "-"]
        print("| " + " | ".join(row) + " |")
    if best:
        print(f"\nBest trained system: **{best}**.")


if __name__ == "__main__":
    main()
