"""Reranking throughput: rk.CrossEncoder vs sentence_transformers.CrossEncoder.predict.

    PYTHONPATH=. python eval/rerank_speed.py --model minilm-scifact --queries 12 --k 50

Same model folder (an adapter is merged into a plain HF folder first, which both
load), same candidates (SciFact test BM25 top-k), same batch size and window,
fp32, same thread count. The systems alternate ``--repeats`` times and the
best time of each counts (the machine is shared). Scores must agree to 1e-5.
Also timed: rankkit with the full last layer (``cls_only=False``, to show what
the [CLS]-only layer buys) and, with ``--compile``, ``compile=True`` after a
one-off compilation whose seconds are reported separately.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm-scifact")
    ap.add_argument("--queries", type=int, default=12)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time rk.CrossEncoder(compile=True), warm")
    args = ap.parse_args()

    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    sys.path.insert(0, str(ROOT / "eval"))
    import rerank_scifact as rs

    import rankkit as rk
    from rankkit.folders import KIND_ADAPTER, read_manifest
    from rankkit.models import resolve_model
    from rankkit.training.peft import merge

    torch.set_num_threads(args.threads)
    folder = resolve_model(args.model).path
    if folder is not None and (read_manifest(folder) or {}).get("kind") == KIND_ADAPTER:
        merged = rs.CACHE / f"merged-{folder.name}"
        merge(folder, merged)
        folder = merged
    ds = rs.dataset("test")
    qids = ds.queries.ids[: args.queries]
    run = rs.bm25_run(ds, 100).subset(qids).top(args.k)
    pq, qidx, docids = run.pairs(ds.queries.subset(qids))
    queries = [ds.queries[pq[i]] for i in qidx.tolist()]
    docs = [ds.corpus[d] for d in docids.tolist()]
    n = len(docs)

    ours = rk.CrossEncoder(folder, max_length=args.max_length, batch_size=args.batch_size, show_progress=False)
    plain = rk.CrossEncoder(folder, max_length=args.max_length, batch_size=args.batch_size, show_progress=False,
                            cls_only=False)
    st = STCrossEncoder(str(folder), max_length=args.max_length, device="cpu")
    pairs = list(zip(queries, docs))
    ident = torch.nn.Identity()

    def run_ours() -> np.ndarray:
        return ours.predict(queries, docs)

    compiled = None
    compile_s = None
    if args.compile:
        compiled = rk.CrossEncoder(folder, max_length=args.max_length, batch_size=args.batch_size,
                                   show_progress=False, compile=True)
        t0 = time.perf_counter()
        compiled.predict(queries[: 2 * args.batch_size], docs[: 2 * args.batch_size])  # one-off compilation
        compile_s = time.perf_counter() - t0

    def run_plain() -> np.ndarray:
        return plain.predict(queries, docs)

    def run_st() -> np.ndarray:
        return st.predict(pairs, batch_size=args.batch_size, activation_fn=ident, show_progress_bar=False,
                          convert_to_numpy=True)

    systems = [("rankkit", run_ours), ("sentence-transformers", run_st), ("rankkit cls_only=False", run_plain)]
    if compiled is not None:
        systems.append(("rankkit compile=True", lambda: compiled.predict(queries, docs)))
    best = {name: float("inf") for name, _ in systems}
    outs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, fn in systems:
            t0 = time.perf_counter()
            outs[name] = np.asarray(fn(), dtype=np.float64)
            best[name] = min(best[name], time.perf_counter() - t0)
    diff = float(np.abs(outs["rankkit"] - outs["sentence-transformers"]).max())
    # float noise of batching itself: sentence-transformers against itself at half the batch size
    half = st.predict(pairs, batch_size=max(1, args.batch_size // 2), activation_fn=ident, show_progress_bar=False,
                      convert_to_numpy=True)
    st_noise = float(np.abs(np.asarray(half, dtype=np.float64) - outs["sentence-transformers"]).max())
    scale = float(np.abs(outs["sentence-transformers"]).max())
    res = {"pairs": n, "batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads,
           "rankkit_pairs_per_s": n / best["rankkit"], "st_pairs_per_s": n / best["sentence-transformers"],
           "speedup": best["sentence-transformers"] / best["rankkit"], "max_abs_diff": diff,
           "max_abs_score": scale, "max_rel_diff": diff / scale,
           "st_vs_st_half_batch_max_abs_diff": st_noise,
           "rankkit_full_last_layer_pairs_per_s": n / best["rankkit cls_only=False"],
           "max_abs_diff_full_last_layer": float(np.abs(outs["rankkit cls_only=False"]
                                                        - outs["sentence-transformers"]).max()),
           "truncated_pairs": ours.stats["truncated"] // args.repeats}
    if compiled is not None:
        res.update({"compiled_pairs_per_s": n / best["rankkit compile=True"], "compile_seconds": compile_s,
                    "compiled_speedup": best["sentence-transformers"] / best["rankkit compile=True"],
                    "compiled_speedup_incl_compile": best["sentence-transformers"]
                    / (best["rankkit compile=True"] + compile_s),
                    "max_abs_diff_compiled": float(np.abs(outs["rankkit compile=True"]
                                                          - outs["sentence-transformers"]).max())})
    print(json.dumps(res, indent=1))
    (ROOT / "eval" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "eval" / "out" / "rerank_speed.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
