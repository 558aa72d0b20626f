"""Unsupervised domain adaptation of a reranker to a new corpus, in the way of DUQGen.

DUQGen (Chandradevan et al., 2024, "Effective Unsupervised Domain Adaptation
of Neural Rankers by Diversifying Synthetic Query Generation"): pick diverse
documents (k-means clusters of their embeddings, documents sampled in
proportion to cluster size), have a local LLM write a query for each
(few-shot prompt), mine hard negatives for each query with BM25 (random
documents fill a short pool, counted), keep the
pairs the current reranker agrees with (the source document ranks within
``agree_rank`` among itself and its negatives), and train a LoRA adapter
from the current reranker on them. Every stage uses the library's own
pieces: ``SentenceEncoder``, faiss k-means, the LLM runtime
(``rankkit.llm``), ``BM25``, ``CrossEncoder`` and ``trainer.train``; what is
written here is only the pipeline and the query cleaning.

Bad input is counted, not fatal: a corpus too small to cluster is used
whole (said so), and generated queries that are empty or copy the document
are dropped; the counts, the time and the LLM calls go into the report, the
adapter's manifest (``"adapt"``) and the saved queries file.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError

log = logging.getLogger(__name__)

FEW_SHOT = [
    ("Aspirin taken daily lowered the rate of first heart attacks in adults over 50 in a ten-year trial.",
     "does daily aspirin prevent heart attacks"),
    ("The revolutions of 1848 spread from Paris to most of central Europe within a few weeks.",
     "how fast did the 1848 revolutions spread"),
    ("Vitamin D deficiency was found in 40% of elderly patients admitted with hip fractures.",
     "vitamin d levels in elderly hip fracture patients"),
]
SYSTEM = "You write the short search query a user would type to find the given document. Reply with the query only."


@dataclass
class AdaptOptions:
    """Settings of :func:`adapt` (defaults sized for a CPU)."""

    n_docs: int = 200              # documents to write queries for
    clusters: int = 20             # k-means clusters of the document embeddings
    embedder: str = "minilm"       # bi-encoder for the clustering
    cluster_sample: int | None = 5000   # documents embedded for clustering (a seeded sample when more)
    llm: str = "smollm2"           # any HF causal LM (name, folder, GGUF)
    max_new_tokens: int = 32
    retries: int = 2               # sampled re-generations for a document whose query was empty or a copy
    temperature: float = 0.8       # of those re-generations (top-p 0.95)
    doc_chars: int = 800           # document text shown to the LLM
    llm_batch_size: int = 8
    depth: int = 30                # BM25 candidates per query for negatives
    num_negatives: int = 7
    agree_rank: int | None = 3     # keep a pair when its document ranks within this (None: keep all)
    method: str = "lora"
    adapter_options: dict[str, Any] = field(default_factory=lambda: {
        "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query", "key", "value", "dense"]})
    steps: int = 200
    batch_size: int = 4
    lr: float = 5e-4
    max_length: int = 128
    seed: int = 0
    threads: int | None = None
    show_progress: bool = True


def select_documents(docids: list[str], texts: list[str], opts: AdaptOptions) -> tuple[list[str], dict[str, Any]]:
    """Diverse documents: k-means clusters of their embeddings, each sampled in proportion to its size."""
    n = len(docids)
    if n == 0:
        raise ConfigError("the corpus has no documents")
    if n <= opts.n_docs or n < 2 * opts.clusters:
        log.warning("corpus of %d documents is too small to cluster into %d groups for %d documents: "
                    "using all of them", n, opts.clusters, opts.n_docs)
        return list(docids), {"clustered": False, "documents": n}
    import faiss

    from ..retrievers.encoder import SentenceEncoder

    if opts.cluster_sample and n > opts.cluster_sample:      # embedding a large corpus is the slow part on CPU
        keep = np.sort(np.random.default_rng(opts.seed).choice(n, size=opts.cluster_sample, replace=False))
        docids, texts, n = [docids[i] for i in keep], [texts[i] for i in keep], int(opts.cluster_sample)

    enc = SentenceEncoder(opts.embedder, show_progress=opts.show_progress)
    emb, _ = enc.encode_documents(texts)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    km = faiss.Kmeans(emb.shape[1], opts.clusters, niter=20, seed=opts.seed, verbose=False)
    km.train(emb)
    _, assign = km.index.search(emb, 1)
    assign = assign[:, 0]
    sizes = np.bincount(assign, minlength=opts.clusters)
    share = opts.n_docs * sizes / n                 # largest-remainder apportionment
    take = np.floor(share).astype(int)
    for c in np.argsort(-(share - take))[: opts.n_docs - int(take.sum())]:
        take[c] += 1
    rng = np.random.default_rng(opts.seed)
    chosen: list[str] = []
    for c in range(opts.clusters):
        members = np.flatnonzero(assign == c)
        for i in rng.choice(members, size=min(int(take[c]), len(members)), replace=False):
            chosen.append(docids[int(i)])
    return chosen, {"clustered": True, "documents": len(chosen), "cluster_sizes": sizes.tolist()}


def messages_for(doc: str, opts: AdaptOptions) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": SYSTEM}]
    for d, q in FEW_SHOT:
        msgs += [{"role": "user", "content": f"Document: {d}"}, {"role": "assistant", "content": q}]
    return msgs + [{"role": "user", "content": f"Document: {doc[: opts.doc_chars]}"}]


def write_queries(backend: Any, corpus: Any, chosen: list[str], opts: AdaptOptions) -> tuple[list[dict], int]:
    """One query per chosen document (greedy), then up to ``opts.retries`` sampled re-generations for
    the documents whose query was empty or a copy (small LLMs often echo the title; DUQGen samples
    too), or echoed a few-shot example. Rows keep the last raw output, the attempts, and why a query was dropped; plus the LLM calls."""
    import torch

    rows: list[dict[str, Any]] = [{"qid": f"gen{i}", "docid": d, "query": "", "raw": "", "dropped": "empty",
                                   "attempts": 0} for i, d in enumerate(chosen)]
    calls = 0
    examples = [t for pair in FEW_SHOT for t in pair]
    for attempt in range(1 + max(0, int(opts.retries))):
        todo = [r for r in rows if r["dropped"] is not None]
        if not todo:
            break
        msgs = [messages_for(corpus[r["docid"]], opts) for r in todo]
        kwargs: dict[str, Any] = {}
        if attempt:
            torch.manual_seed(opts.seed + attempt)
            kwargs = {"do_sample": True, "temperature": float(opts.temperature), "top_p": 0.95, "top_k": 0}
        gens = backend.generate([backend.render(m) for m in msgs], msgs, opts.max_new_tokens, opts.llm_batch_size,
                                progress=opts.show_progress, **kwargs)
        calls += len(msgs)
        for r, g in zip(todo, gens):
            q, why = (clean_query(g.text, corpus[r["docid"]], examples) if g.error is None
                      else ("", f"error: {g.error}"))
            r.update(query=q, raw=g.text, dropped=why, attempts=attempt + 1)
    return rows, calls


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def clean_query(text: str, doc: str, examples: Sequence[str] = ()) -> tuple[str, str | None]:
    """(query, why dropped or None): the first line, without a ``Query:`` label or quotes. A query that
    echoes the document, or one of the prompt's few-shot ``examples`` (small LLMs do both), is dropped."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(query|search query)\s*:\s*", "", line, flags=re.I).strip().strip("\"'` ").strip()
    words = _words(line)
    if not words:
        return line, "empty"
    doc_words = _words(doc)
    if words == doc_words or (len(words) >= 6 and _copied_share(words, doc_words) >= COPY_SHARE):
        return line, "copies the document"
    if len(words) >= 6 and any(_copied_share(words, _words(e)) >= EXAMPLE_SHARE for e in examples):
        return line, "copies a few-shot example"
    return line, None


#: a query of 6+ words whose word 4-grams occur in the document at least this often is a copy
COPY_SHARE = 0.6
#: ... or in a few-shot example at least this often (text from another domain: a lower bar)
EXAMPLE_SHARE = 0.3


def _copied_share(words: list[str], doc_words: list[str], n: int = 4) -> float:
    """Share of the query's word n-grams that occur verbatim in the document (small LLMs echo titles)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    doc = {tuple(doc_words[i:i + n]) for i in range(len(doc_words) - n + 1)}
    return sum(g in doc for g in grams) / max(1, len(grams))


def adapt(corpus: Any, reranker: str, out: str | Path, options: AdaptOptions | None = None,
          queries_file: str | Path | None = None) -> dict[str, Any]:
    """Adapt ``reranker`` (a rankkit reranker folder or name) to ``corpus``; save a LoRA adapter at ``out``.

    Returns the report (also in the adapter's ``rankkit.json`` under ``"adapt"``);
    the generated queries with their fate go to ``queries_file``
    (default ``<out>.queries.jsonl``).
    """
    import json

    import torch

    import rankkit as rk

    from ..io import atomic_path
    from ..llm.backends import make_backend
    from ..types import Corpus, Queries
    from .data import Group, cached_run
    from .trainer import TrainOptions, train

    opts = options or AdaptOptions()
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    corpus = Corpus.coerce(corpus)
    t0 = time.perf_counter()
    docids = list(corpus)
    chosen, selection = select_documents(docids, [corpus[d] for d in docids], opts)
    backend = make_backend("transformers", opts.llm)
    t_llm = time.perf_counter()
    rows, llm_calls = write_queries(backend, corpus, chosen, opts)
    llm_seconds = time.perf_counter() - t_llm
    ok = [r for r in rows if r["dropped"] is None]
    random_fill = 0
    if ok:
        queries = Queries({r["qid"]: r["query"] for r in ok})
        run = cached_run(rk.BM25.build(corpus), queries, k=opts.depth + 1)
        rng = np.random.default_rng(opts.seed)
        for r in ok:
            hits = run.docids(r["qid"]).tolist() if r["qid"] in run else []
            pool = [str(d) for d in hits if d != r["docid"]][: opts.depth]
            picked = [pool[i] for i in rng.permutation(len(pool))[: opts.num_negatives]]
            while len(picked) < min(opts.num_negatives, len(docids) - 1):   # short pool: random documents
                d = docids[int(rng.integers(len(docids)))]
                if d != r["docid"] and d not in picked:
                    picked.append(d)
                    random_fill += 1
            r["negatives"] = picked
        ok = [r for r in ok if r["negatives"]]
    if ok and opts.agree_rank is not None:          # pseudo-label filter with the current reranker
        ce = rk.CrossEncoder(reranker, show_progress=opts.show_progress, max_length=opts.max_length)
        qs = [r["query"] for r in ok for _ in range(1 + len(r["negatives"]))]
        ds = [corpus[x] for r in ok for x in [r["docid"], *r["negatives"]]]
        scores = ce.predict(qs, ds)
        at = 0
        for r in ok:
            s = scores[at:at + 1 + len(r["negatives"])]
            at += len(s)
            r["rank"] = int((s > s[0]).sum()) + 1
            if r["rank"] > opts.agree_rank:
                r["dropped"] = "reranker disagrees"
        ok = [r for r in ok if r["dropped"] is None]
    counts: dict[str, int] = {}
    for r in rows:
        key = r["dropped"] or "kept"
        counts[key] = counts.get(key, 0) + 1
    queries_path = Path(queries_file) if queries_file else Path(f"{out}.queries.jsonl")
    with atomic_path(queries_path) as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    if not ok:
        raise RankkitError(f"no training pairs left after filtering the {len(rows)} generated queries "
                           f"({counts}); see {queries_path}")
    groups = [Group(r["query"], [corpus[r["docid"]], *(corpus[x] for x in r["negatives"])],
                    [1.0] + [0.0] * len(r["negatives"]), qid=r["qid"]) for r in ok]
    report = {"selection": selection, "generated": len(rows), "counts": counts, "llm": opts.llm,
              "llm_calls": llm_calls, "llm_seconds": round(llm_seconds, 1), "random_negatives": random_fill, "reranker": str(reranker),
              "options": {k: v for k, v in asdict(opts).items() if k != "show_progress"},
              "queries_file": str(queries_path)}
    topts = TrainOptions(steps=opts.steps, batch_size=opts.batch_size, group_size=1 + opts.num_negatives,
                         lr=opts.lr, warmup_ratio=0.05, weight_decay=0.01, seed=opts.seed, resume=False,
                         threads=opts.threads, logging_steps=max(1, min(25, opts.steps // 4)))
    res = train(groups, str(reranker), out, method=opts.method, adapter_options=opts.adapter_options,
                max_length=opts.max_length, options=topts, extra_manifest={"adapt": report})
    report.update(folder=str(res.folder), train_seconds=round(res.seconds, 1),
                  seconds=round(time.perf_counter() - t0, 1), pairs=len(groups))
    return report


__all__ = ["AdaptOptions", "FEW_SHOT", "adapt", "clean_query", "select_documents"]
