"""Shared by the dense/fusion benchmarks: the cached corpus index (encode once).

Encoding SciFact's 5,183 abstracts takes minutes on a shared CPU, so the
first script to need them builds the flat index and saves it under
``eval/cache/`` (git-ignored) with the encoding time and peak memory of that
run; later scripts load it (checked against corpus and model by the manifest).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "eval" / "cache"
#: ../shared/data from the project root, as in tests/conftest.py
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
SCIFACT = SHARED / "beir" / "scifact"


def limit_threads(n: int) -> None:
    """The benchmark machine's CPU is shared: cap torch and faiss threads."""
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cached_dense(corpus: Any, model: str = "minilm", batch_size: int = 32, name: str = "scifact",
                 show_progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """The flat dense index of ``corpus`` from the cache, building it on first use.

    Returns the retriever and the build record (encoding seconds, docs/s,
    peak memory, truncated texts, ``cached``: whether this run loaded it).
    """
    import rankkit as rk

    folder = CACHE / f"{name}-{model.replace('/', '_')}-flat"
    record_file = folder.with_suffix(".build.json")
    if folder.exists() and record_file.exists():
        t0 = time.perf_counter()
        dense = rk.DenseRetriever.load(folder, corpus=corpus)
        record = json.loads(record_file.read_text())
        record.update(cached=True, cache_load_s=time.perf_counter() - t0)
        return dense, record
    t0 = time.perf_counter()
    dense = rk.DenseRetriever.build(corpus, model=model, batch_size=batch_size,
                                    show_progress=show_progress)
    seconds = time.perf_counter() - t0
    record = {"docs": len(corpus), "build_s": seconds, "docs_per_s": len(corpus) / seconds,
              "batch_size": batch_size, "truncated": dense.config["truncated"],
              "peak_rss_mb": peak_rss_mb(), "date": time.strftime("%Y-%m-%d %H:%M")}
    dense.save(folder)
    record_file.write_text(json.dumps(record, indent=2))
    return dense, {**record, "cached": False}


def write_report(report: dict[str, Any], path: str | Path) -> None:
    """Stamp the date and write a benchmark's JSON report (folders created as needed)."""
    report["date"] = time.strftime("%Y-%m-%d %H:%M")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2))
