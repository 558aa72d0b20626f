"""rankkit: retrieval, re-ranking and retrieval-augmented generation.

``import rankkit as rk`` is light: the data model, pipeline operators and
evaluation load at once; every model-backed stage (and torch, transformers,
faiss, bm25s) is imported only when first used, through ``_LAZY`` below.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import datasets
from .errors import ConfigError, DataFormatError, MissingResourceError, RankkitError
from .evaluation import Comparison, Evaluator, compare, evaluate
from .pipeline import (
    Cutoff,
    Fusion,
    Pipeline,
    Retriever,
    RunStage,
    Stage,
    fuse,
    fuse_runs,
)
from .rerankers.base import ListReranker, Reranker
from .rerankers.registry import RERANKERS, make_reranker, register_reranker
from .types import Answer, Corpus, Dataset, Qrels, Queries, Result, Run, as_run

__version__ = "0.1.0"

#: public name -> "module:attribute", imported on first access
_LAZY: dict[str, str] = {
    "BM25": "rankkit.retrievers.bm25:BM25",
    "LuceneBM25": "rankkit.retrievers.lucene:LuceneBM25",
    "load_index": "rankkit.retrievers:load_index",
    "DenseRetriever": "rankkit.retrievers.dense:DenseRetriever",
    "CURRetriever": "rankkit.retrievers.cur:CURRetriever",
    "BiEncoderReranker": "rankkit.rerankers.biencoder:BiEncoderReranker",
    "CrossEncoder": "rankkit.rerankers.cross_encoder:CrossEncoder",
    "FirstReranker": "rankkit.rerankers.first:FirstReranker",
    "RankR1Reranker": "rankkit.rerankers.rank_r1:RankR1Reranker",
    "Generator": "rankkit.generators.generator:Generator",
    "Compressor": "rankkit.generators.compress:Compressor",
    "evaluate_rag": "rankkit.rag_eval:evaluate_rag",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'rankkit' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Answer", "Comparison", "ConfigError", "Corpus", "Cutoff", "DataFormatError", "Dataset",
    "Evaluator", "Fusion", "ListReranker", "MissingResourceError", "Pipeline", "Qrels", "Queries",
    "RERANKERS", "RankkitError", "Reranker", "Result", "Retriever", "Run", "RunStage", "Stage", "as_run",
    "compare", "datasets", "evaluate", "fuse", "fuse_runs", "make_reranker", "register_reranker", *_LAZY,
]
