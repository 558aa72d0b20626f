"""Loaders for test collections and the standard IR file formats."""

from .beir import load_beir
from .formats import (
    read_corpus,
    read_corpus_jsonl,
    read_qrels,
    read_queries,
    read_queries_jsonl,
    read_trec_docs,
    read_trec_topics,
    write_qrels,
)
from .hf import corpus_from_hf, queries_from_hf
from .msmarco import Triple, read_triples
from .trec import load_trec

__all__ = [
    "load_beir", "load_trec", "read_corpus", "read_corpus_jsonl", "read_qrels", "read_queries",
    "read_queries_jsonl", "read_trec_docs", "read_trec_topics", "write_qrels", "read_triples",
    "Triple", "corpus_from_hf", "queries_from_hf",
]
