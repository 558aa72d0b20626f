"""Rerankers: stages that rescore the candidates of an incoming run.

- ``base.py``: the contract. ``Reranker.score_pairs`` (pairwise) or
  ``ListReranker.rank_lists`` (list-level); interpolation, depth, empty lists and
  timing are handled there once.
- ``registry.py``: ``RERANKERS`` name -> "module:Class"; ``make_reranker(name, model, corpus)``.
- ``cross_encoder.py``, ``biencoder.py``: the rerankers shipped.

A new reranker: one module here + one line in ``registry.RERANKERS``.
"""

from .base import ListReranker, Reranker
from .registry import RERANKERS, make_reranker, register_reranker

__all__ = ["Reranker", "ListReranker", "RERANKERS", "make_reranker", "register_reranker"]
