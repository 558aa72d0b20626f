"""Rerankers: stages that rescore the candidates of an incoming run."""
