"""FIRST on SciFact test: single-token (logits) vs generate mode, untrained vs a trained LoRA adapter.

    PYTHONPATH=. python eval/first.py --queries 300                        # untrained SmolLM2, both modes
    PYTHONPATH=. python eval/first.py --queries 300 --adapter rankkit/rerankers/models/first-smollm2-scifact

Candidates: BM25 top-20 (one window of 20 per query; ``--k`` larger slides
windows of ``--window`` with ``--stride``). The query subset is fixed and
documented: SciFact test queries sorted by query id (as strings), the first
``--queries N`` (300 = all). Reported, in one JSON (eval/out/first*.json):

- nDCG@10 per system, paired t-tests vs BM25, trained vs untrained (same
  mode), and vs the project's cross-encoder (``--cross-encoder``, reranking the
  same BM25 top-k) when it is available;
- wall time per system and per window, generate mode's repair counts;
- speed on ``--speed-windows`` windows of the subset (untrained model): a FIRST
  window (prefix cache on and off) vs one plain prefill of the same prompt (the
  forward pass ``generate`` starts with), generate mode split into prefill and
  decode, and the shared-prefix cache's saving (uncached / cached).

Timings are medians of ``--repeats`` runs after one warm-up, on ``--threads``
CPU threads (or the GPU when ``--device cuda``; the same code path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "eval"))

from _scifact import SCIFACT, write_report  # noqa: E402

import rankkit as rk  # noqa: E402
import rankkit.folders  # noqa: E402,F401
from rankkit.evaluation import paired_test  # noqa: E402


def subset(ds: rk.Dataset, n: int) -> rk.Dataset:
    """The first ``n`` test queries by query id (the documented fixed subset)."""
    qids = sorted(q for q in ds.queries if q in ds.qrels)[:n]
    return rk.Dataset(ds.corpus, ds.queries.subset(qids), ds.qrels.subset(qids), name=f"scifact/test[:{n}]")


def median_time(fn: Any, repeats: int) -> float:
    fn()                                               # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plain_prefill(backend: Any, prompts: list[str], batch_size: int) -> None:
    """One forward pass over each whole prompt, building its KV cache: what ``generate`` does first."""
    import torch

    from rankkit.llm.next_token import logits_to_keep_arg

    model, keep = backend.model, logits_to_keep_arg(backend.model)
    with torch.inference_mode():
        for _, ids, mask in backend._batches(backend.encode(prompts), batch_size, False, "prefill"):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **({keep: 1} if keep else {}))


def speed(reranker: Any, ds: rk.Dataset, first: rk.Run, n_windows: int, repeats: int) -> dict[str, Any]:
    """FIRST window vs plain prefill vs generate (prefill + decode), prefix cache on/off, per window."""
    from rankkit.rerankers.first import FirstReranker

    qids = [q for q in ds.queries if len(first.docids(q)) >= reranker.window][:n_windows]
    prompts = [reranker.window_prompt(ds.queries[q], [ds.corpus[d] for d in first.docids(q)[:reranker.window]])
               for q in qids]
    if not prompts:
        return {}
    be, bs, n = reranker.backend, reranker.batch_size, len(prompts)
    uncached = FirstReranker(corpus=ds.corpus, window=reranker.window, stride=reranker.stride, backend=be,
                             batch_size=bs, max_passage_tokens=reranker.max_passage_tokens, shared_prefix=False)
    t_cached = median_time(lambda: reranker.window_logprobs(prompts), repeats) / n
    t_uncached = median_time(lambda: uncached.window_logprobs(prompts), repeats) / n
    t_prefill = median_time(lambda: plain_prefill(be, [p.text for p in prompts], bs), repeats) / n
    gens: list[Any] = []

    def generate() -> None:
        gens[:] = be.generate([p.text for p in prompts], [p.messages for p in prompts],
                              max_new_tokens=4 * reranker.window + 8, batch_size=bs)

    t_generate = median_time(generate, max(1, repeats // 2)) / n
    new_tokens = sum(g.n_tokens for g in gens) / n
    prompt_tokens = be.count_tokens([p.text for p in prompts])
    prefix_tokens = be.count_tokens([prompts[0].prefix])[0]
    decode = max(t_generate - t_prefill, 0.0)
    return {"windows": n, "window": reranker.window, "batch_size": bs,
            "prompt_tokens_mean": float(np.mean(prompt_tokens)), "shared_prefix_tokens": prefix_tokens,
            "first_window_s": t_cached, "first_window_uncached_s": t_uncached, "plain_prefill_s": t_prefill,
            "first_vs_prefill": t_cached / t_prefill, "first_uncached_vs_prefill": t_uncached / t_prefill,
            "prefix_cache_speedup": t_uncached / t_cached,
            "generate_window_s": t_generate, "generate_prefill_s": t_prefill, "generate_decode_s": decode,
            "generated_tokens_mean": new_tokens,
            "decode_s_per_token": decode / new_tokens if new_tokens else None,
            "first_speedup_vs_generate": t_generate / t_cached}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=300, help="first N test queries by id (300 = all)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--adapter", default=None, help="a trained FIRST adapter folder (rankkit train first)")
    ap.add_argument("--modes", default="logits,generate")
    ap.add_argument("--k", type=int, default=20, help="rerank BM25's top k")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--stride", type=int, default=10)
    ap.add_argument("--max-passage-tokens", type=int, default=None,
                    help="passage cut for every system (default: what --adapter was trained with, else 128)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--cross-encoder", default="minilm-scifact", help="'' to skip the cross-encoder comparison")
    ap.add_argument("--speed-windows", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="e.g. cuda (default: CPU)")
    ap.add_argument("--out", default=None, help="JSON report (default eval/out/first[-adapter].json)")
    args = ap.parse_args()

    import torch

    from rankkit.training.data import cached_run

    torch.set_num_threads(args.threads)
    ds = subset(rk.datasets.load_beir(SCIFACT, split="test"), args.queries)
    bm25 = cached_run(rk.BM25.build(ds.corpus), ds.queries, ROOT / "eval" / "cache", ds.corpus.fingerprint(),
                      k=args.k)
    trained_with = (rk.folders.read_manifest(args.adapter) or {}).get("reranker", {}) if args.adapter else {}
    if args.max_passage_tokens is None:   # untrained and trained compared at the length it trained with
        args.max_passage_tokens = int(trained_with.get("max_passage_tokens", 128))
    common = dict(corpus=ds.corpus, window=args.window, stride=args.stride, batch_size=args.batch_size,
                  max_passage_tokens=args.max_passage_tokens, device=args.device)
    if args.adapter:
        for key, value in (("window", args.window), ("max_passage_tokens", args.max_passage_tokens)):
            if key in trained_with and trained_with[key] != value:
                print(f"warning: the adapter was trained with {key}={trained_with[key]}, evaluated with {value}",
                      file=sys.stderr)
    models = {"untrained": args.model, **({"trained": args.adapter} if args.adapter else {})}
    systems: dict[str, rk.Run] = {"bm25": bm25}
    records: dict[str, Any] = {}
    for label, model in models.items():
        for mode in args.modes.split(","):
            name = f"first-{mode}-{label}"
            r = rk.FirstReranker(model, mode=mode, **common)
            t0 = time.perf_counter()
            systems[name] = r(ds.queries, bm25)
            wall = time.perf_counter() - t0
            records[name] = {"model": str(model), "mode": mode, "wall_s": wall,
                             "per_window_s": wall / max(r.stats["windows"], 1), **r.stats}
            print(f"{name}: {wall:.1f} s, {r.stats['windows']} windows", file=sys.stderr, flush=True)
    if args.cross_encoder:
        try:
            ce = rk.CrossEncoder(args.cross_encoder, corpus=ds.corpus, show_progress=False)
            t0 = time.perf_counter()
            systems["cross-encoder"] = ce(ds.queries, bm25)
            records["cross-encoder"] = {"model": args.cross_encoder, "wall_s": time.perf_counter() - t0}
        except rk.MissingResourceError as e:
            print(f"cross-encoder skipped: {e}", file=sys.stderr)
    qids = list(ds.queries)
    per_query = {}
    for n, run in systems.items():
        pq = rk.evaluate(run, ds.qrels, ["nDCG@10"], per_query=True)
        per_query[n] = np.array([pq.get(q, {}).get("nDCG@10", 0.0) for q in qids])
    ndcg = {n: float(v.mean()) for n, v in per_query.items()}
    tests: dict[str, float] = {}
    for n in systems:
        if n != "bm25":
            tests[f"{n} vs bm25"] = paired_test(per_query[n], per_query["bm25"])
        if n.endswith("-trained") and n.replace("-trained", "-untrained") in per_query:
            tests[f"{n} vs untrained"] = paired_test(per_query[n], per_query[n.replace("-trained", "-untrained")])
        if n.startswith("first") and "cross-encoder" in per_query:
            tests[f"{n} vs cross-encoder"] = paired_test(per_query[n], per_query["cross-encoder"])
    reference = rk.FirstReranker(args.model, **common)
    report = {"queries": len(qids), "subset": f"SciFact test, first {len(qids)} query ids (sorted as strings)",
              "k": args.k, "window": args.window, "stride": args.stride, "model": args.model,
              "adapter": args.adapter, "max_passage_tokens": args.max_passage_tokens, "threads": args.threads,
              "device": args.device or "cpu", "ndcg@10": ndcg, "paired_t_p": tests, "systems": records,
              "speed": speed(reference, ds, bm25, args.speed_windows, args.repeats)}
    for n, v in ndcg.items():
        print(f"{n:28s} nDCG@10 {v:.4f}")
    for n, p in tests.items():
        print(f"{n:45s} p = {p:.3g}")
    for k, v in report["speed"].items():
        print(f"{k:32s} {v:.4g}" if isinstance(v, float) else f"{k:32s} {v}")
    out = args.out or ROOT / "eval" / "out" / f"first{'-adapter' if args.adapter else ''}-q{len(qids)}.json"
    write_report(report, out)
    print(f"-> {out}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
