"""Dense retrieval benchmark on SciFact (issue 4).

Measures in one run: encoding throughput of rankkit vs a bare
``SentenceTransformer.encode`` on the same texts and batch size; corpus
encoding (cached in eval/cache/ after the first run); flat-index quality
(nDCG@10, R@100); HNSW and IVF-PQ build time and recall@100 relative to flat
over their search knobs; save/load time, size and memory of each index (load
measured in a fresh subprocess, with and without mmap); query throughput; peak
memory.

    PYTHONPATH=. python eval/dense.py            # writes eval/out/dense.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _scifact import ROOT, SCIFACT, cached_dense, limit_threads, peak_rss_mb, write_report

_LOAD_PROBE = r"""
import json, sys, time, faiss
faiss.omp_set_num_threads(1)
import torch; torch.set_num_threads(1)
from rankkit.retrievers.dense import DenseRetriever
folder, mmap = sys.argv[1], sys.argv[2] == "1"
def rss():  # current resident memory in MB (the peak would hide a load under the model's)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
from rankkit.retrievers.encoder import SentenceEncoder
SentenceEncoder("minilm")  # model load and imports before the clock starts
from rankkit.retrievers.faiss_index import index_type, read_index
kind = index_type(json.load(open(folder + "/rankkit.json"))["index"]["type"])
r0 = rss(); t0 = time.perf_counter()
index = read_index(folder + "/index.faiss", kind, mmap=mmap)
t1 = time.perf_counter(); r1 = rss()
del index
t2 = time.perf_counter()
dense = DenseRetriever.load(folder, mmap=mmap)
t3 = time.perf_counter(); r3 = rss()
print(json.dumps({"faiss_read_s": t1 - t0, "faiss_rss_delta_mb": r1 - r0,
                  "load_s": t3 - t2, "rss_delta_mb": r3 - r0}))
"""


def recall_vs(reference: dict[str, np.ndarray], run, depth: int) -> float:
    """Mean share of the reference top-``depth`` found in the run's top-``depth``."""
    shares = []
    for qid, ref in reference.items():
        got = set(run.docids(qid)[:depth].tolist())
        shares.append(len(got & set(ref[:depth].tolist())) / max(1, min(depth, len(ref))))
    return float(np.mean(shares))


def time_search(dense, vectors: np.ndarray, k: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds for one batched faiss search of all query vectors."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dense.search_vectors(vectors, k)
        best = min(best, time.perf_counter() - t0)
    return best


def run_from_vectors(dense, qids: list[str], vectors: np.ndarray, k: int):
    """The run ``dense % k`` gives, from already encoded queries (the sweeps reuse them)."""
    import rankkit as rk

    scores, labels = dense.search_vectors(vectors, k)
    return rk.Run({q: (dense.docids[lab[lab >= 0]], sc[lab >= 0])
                   for q, lab, sc in zip(qids, labels, scores)})


def load_probe(folder: Path, mmap: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", _LOAD_PROBE, str(folder), "1" if mmap else "0"],
                         capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 2**20


def throughput(dense, texts: list[str], batch_size: int, rounds: int) -> dict:
    """rankkit's document encoding vs SentenceTransformer.encode, interleaved rounds."""
    enc = dense.encoder
    st = enc.model
    enc.batch_size = batch_size
    enc.encode_documents(texts[:batch_size], show_progress=False)  # warm-up both paths
    st.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    rk_s, st_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours, _ = enc.encode_documents(texts, show_progress=False)
        rk_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs = st.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        st_s.append(time.perf_counter() - t0)
        assert np.allclose(ours, theirs, atol=1e-5), "rankkit and sentence-transformers disagree"
    n = len(texts)
    return {"texts": n, "batch_size": batch_size, "rounds": rounds,
            "rankkit_s": rk_s, "st_s": st_s,
            "rankkit_docs_per_s_median": n / statistics.median(rk_s),
            "st_docs_per_s_median": n / statistics.median(st_s),
            "ratio_median": statistics.median(st_s) / statistics.median(rk_s),
            "ratio_best": min(st_s) / min(rk_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SCIFACT), help="BEIR folder")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--throughput-docs", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "eval" / "out" / "dense.json"))
    args = ap.parse_args()
    limit_threads(args.threads)
    (ROOT / "eval" / "out").mkdir(parents=True, exist_ok=True)
    import rankkit as rk

    report: dict = {"data": args.data, "model": args.model, "threads": args.threads}
    ds = rk.datasets.load_beir(args.data, split="test")
    name = Path(args.data).name

    # 1. corpus encoding + flat index (cached after the first run)
    dense, build = cached_dense(ds.corpus, args.model, args.batch_size, name=name)
    report["corpus_build"] = build
    print(f"corpus: {len(ds.corpus)} docs, build {build['build_s']:.1f}s "
          f"({build['docs_per_s']:.1f} docs/s, {build['truncated']} truncated)"
          + (" [from cache]" if build["cached"] else ""), flush=True)

    # 2. encoding throughput: rankkit vs SentenceTransformer.encode (same texts, batch size)
    step = max(1, len(ds.corpus) // args.throughput_docs)
    texts = ds.corpus.contents[::step][:args.throughput_docs]
    report["encode_throughput"] = tp = throughput(dense, texts, args.batch_size, args.rounds)
    print(f"encode: rankkit {tp['rankkit_docs_per_s_median']:.1f} docs/s, sentence-transformers "
          f"{tp['st_docs_per_s_median']:.1f} docs/s, ratio {tp['ratio_median']:.3f} "
          f"(best-of {tp['ratio_best']:.3f})", flush=True)

    # 3. flat quality and query throughput (encoding + search, all queries in one batch)
    t0 = time.perf_counter()
    flat_run = (dense % 1000)(ds.queries)
    e2e = time.perf_counter() - t0
    qvec = dense.encode_queries(ds.queries.texts)
    flat_scores = rk.evaluate(flat_run, ds.qrels, ["nDCG@10", "R@100", "R@1000"])
    reference = {q: flat_run.docids(q) for q in flat_run.qids}
    assert run_from_vectors(dense, ds.queries.ids, qvec, 100) == flat_run.top(100)
    report["flat"] = {**flat_scores, "queries": len(ds.queries),
                      "end_to_end_qps": len(ds.queries) / e2e,
                      "search_qps": len(ds.queries) / time_search(dense, qvec, 100)}
    print(f"flat: {flat_scores}, {report['flat']['end_to_end_qps']:.1f} q/s end-to-end, "
          f"{report['flat']['search_qps']:.0f} q/s search-only", flush=True)

    # 4. approximate indexes over the same vectors: build time, recall@100 vs flat per knob
    # ef_search below k=100 acts as 100 (HNSW needs a candidate list of at least k)
    sweeps = {"hnsw": [{"ef_search": e} for e in (100, 128, 256, 512)],
              "ivfpq": [{"nprobe": p, "refine": r} for r in (0, 4) for p in (1, 4, 8, 16, 32, 64)]}
    report["indexes"] = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "eval" / "out") as tmp:
        for kind in ["flat", *sweeps]:
            if kind == "flat":
                index, build_s = dense, None
            else:
                t0 = time.perf_counter()
                index = dense.with_index(kind)
                build_s = time.perf_counter() - t0
            entry: dict = {"build_s": build_s, "params": index.config["index"]}
            folder = Path(tmp) / kind
            t0 = time.perf_counter()
            index.save(folder)
            entry["save_s"] = time.perf_counter() - t0
            entry["disk_mb"] = folder_mb(folder)
            entry["load"] = {"ram": load_probe(folder, False), "mmap": load_probe(folder, True)}
            if kind in sweeps:
                entry["sweep"] = []
                for knobs in sweeps[kind]:
                    tuned = index.with_search(**knobs)
                    run = run_from_vectors(tuned, ds.queries.ids, qvec, 100)
                    entry["sweep"].append({
                        **knobs, "recall@100_vs_flat": recall_vs(reference, run, 100),
                        "recall@10_vs_flat": recall_vs(reference, run, 10),
                        **rk.evaluate(run, ds.qrels, ["nDCG@10", "R@100"]),
                        "search_qps": len(ds.queries) / time_search(tuned, qvec, 100)})
            report["indexes"][kind] = entry
            print(kind, json.dumps(entry), flush=True)

    report["peak_rss_mb"] = peak_rss_mb()
    write_report(report, args.out)
    print(f"peak RSS {report['peak_rss_mb']:.0f} MB; wrote {args.out}")


if __name__ == "__main__":
    main()
