"""Hugging Face ``datasets`` objects as rankkit collections."""

from __future__ import annotations

from typing import Any

from ..types import Corpus, Queries


def corpus_from_hf(dataset: Any, id_field: str = "_id", text_field: str = "text",
                   title_field: str | None = "title") -> Corpus:
    """A Corpus from a ``datasets.Dataset`` with id/text(/title) columns."""
    return Corpus.from_hf(dataset, id_field=id_field, text_field=text_field, title_field=title_field)


def queries_from_hf(dataset: Any, id_field: str = "_id", text_field: str = "text") -> Queries:
    return Queries(dict(zip(map(str, dataset[id_field]), dataset[text_field])))
