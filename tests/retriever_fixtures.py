"""A toy retrieval collection for the retriever-training tests: 16 documents on 16 topics.

Each document holds its topic's four words plus shared filler; each query two
of its topic's words, so a bi-encoder that learns to match words ranks the
positive first, while the random tiny model of ``dense_fixtures`` does not.
"""

from __future__ import annotations

import json
from pathlib import Path

TOPICS = [
    ["apple", "banana", "cherry", "grape"], ["river", "ocean", "lake", "stream"],
    ["guitar", "piano", "violin", "drum"], ["tiger", "lion", "leopard", "panther"],
    ["copper", "iron", "silver", "gold"], ["winter", "snow", "frost", "ice"],
    ["doctor", "nurse", "hospital", "clinic"], ["train", "railway", "station", "track"],
    ["bread", "butter", "cheese", "milk"], ["planet", "star", "galaxy", "comet"],
    ["football", "soccer", "goal", "stadium"], ["castle", "king", "queen", "throne"],
    ["engine", "motor", "fuel", "piston"], ["forest", "tree", "leaf", "branch"],
    ["camera", "photo", "lens", "picture"], ["coffee", "tea", "sugar", "cup"],
]
FILLER = "the report describes several things in general terms"


def toy_dataset():
    import rankkit as rk

    ids = [f"d{i}" for i in range(len(TOPICS))]
    texts = [f"{' '.join(words)} {FILLER}" for words in TOPICS]
    corpus = rk.Corpus(ids, texts)
    queries = rk.Queries({f"q{i}": f"{w[0]} {w[2]}" for i, w in enumerate(TOPICS)})
    qrels = rk.Qrels({f"q{i}": {f"d{i}": 1} for i in range(len(TOPICS))})
    return rk.Dataset(corpus, queries, qrels, name="toy")


def write_beir(folder: Path, dataset) -> Path:
    """The toy collection as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for docid in dataset.corpus.ids:
            f.write(json.dumps({"_id": docid, "title": "", "text": dataset.corpus[docid]}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in dataset.queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "qrels" / "train.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in dataset.qrels.items():
            for docid, grade in judged.items():
                f.write(f"{qid}\t{docid}\t{grade}\n")
    return folder
