"""The Compressor stage: LexRank + query similarity within a token budget, citations kept per document."""

from __future__ import annotations

import numpy as np
import pytest

import rankkit as rk
from rankkit.generators.compress import compress, lexrank, select, split_sentences

CORPUS = {
    "d1": "Aspirin lowers the risk of heart attack. It thins the blood. The trial ran for five years.",
    "d2": "Heart attack risk falls with aspirin in older adults. Side effects include bleeding. "
          "Funding came from a charity.",
    "d3": "Cats sleep most of the day. Dogs like walks.",
}
QUERIES = {"q1": "Does aspirin reduce heart attack risk?", "q2": "Do cats sleep a lot?"}
RUN = rk.Run({"q1": (["d2", "d1", "d3"], [3.0, 2.0, 1.0]), "q2": (["d3", "d1"], [2.0, 1.0])})


class Echo(rk.Stage):
    """Reports the compressed context the next stage receives (no model needed)."""

    name = "echo"

    def transform(self, queries, run):
        self.__dict__.setdefault("seen", {}).update(run.extras["compressed"])
        return run


def test_split_sentences_and_lexrank_centrality():
    assert split_sentences("One thing. Two things! (Three) here? 4 more.") == \
        ["One thing.", "Two things!", "(Three) here?", "4 more."]
    sim = np.array([[1, .9, .9], [.9, 1, 0], [.9, 0, 1]])
    p = lexrank(sim)
    assert p.argmax() == 0 and abs(p.sum() - 1) < 1e-6      # the hub is the most central
    assert select([0.9, 0.1, 0.5], [5, 1, 3], budget=6) == [0, 1]   # 2 no longer fits, 1 still does


def test_compress_keeps_budget_and_origin():
    passages = [(d, CORPUS[d]) for d in ("d2", "d1", "d3")]
    for budget in (5, 12, 20, 40):
        kept, cut = compress(QUERIES["q1"], passages, budget)
        assert sum(len(s.text.split()) for s in kept) <= budget
        for s in kept:                                   # every sentence is from the document it names
            assert s.text in CORPUS[s.docid] or cut
    kept, _ = compress(QUERIES["q1"], passages, 20)
    assert {s.docid for s in kept} <= {"d1", "d2"}        # the cat document is neither central nor relevant
    order = [(["d2", "d1", "d3"].index(s.docid), s.index) for s in kept]
    assert order == sorted(order)                          # original order


def test_budget_smaller_than_a_sentence_cuts_the_best_one():
    kept, cut = compress(QUERIES["q1"], [("d1", CORPUS["d1"])], 3)
    assert cut == 1 and len(kept) == 1 and len(kept[0].text.split()) <= 3 and kept[0].docid == "d1"


def test_bad_input():
    with pytest.raises(rk.ConfigError, match="budget"):
        rk.Compressor(CORPUS, budget=0)
    with pytest.raises(rk.ConfigError, match="budget"):
        compress("q", [("d1", "text.")], 0.5)
    with pytest.raises(rk.ConfigError, match="non-empty passage"):
        compress("q", [], 10)
    with pytest.raises(rk.ConfigError, match="non-empty passage"):
        compress("q", [("d1", "  ")], 10)
    with pytest.raises(rk.ConfigError, match="tokenizer"):
        rk.Compressor(CORPUS, budget=10, tokenizer="gpt2")


def test_compressor_in_a_pipeline_maps_citations_back():
    comp, echo = rk.Compressor(CORPUS, budget=14), Echo()
    result = (rk.RunStage(RUN) >> comp >> echo)(QUERIES)
    run = result.run
    assert comp.stats["tokens_out"] <= 14 * 2 and comp.stats["tokens_out"] < comp.stats["tokens_in"]
    for qid, texts in echo.seen.items():
        assert sum(len(t.split()) for t in texts.values()) <= 14
        assert list(texts) == run.docids(qid).tolist()         # passage n of the prompt = document n of the run
        for d, t in texts.items():
            assert all(s in CORPUS[d] for s in split_sentences(t))
    assert run.docids("q2").tolist()[0] == "d3"
    # a generator citing [n] of the compressed context cites document n of the compressed run
    from rankkit.generators.prompts import map_citations

    ctx = run.docids("q1").tolist()
    assert map_citations("Yes [1] and [2].", ctx) == ctx[:2]


def test_compressor_counts_with_generator_tokenizer(one_thread):
    from tests.tiny_llm import tiny_llm_dir

    gen = rk.Generator(str(tiny_llm_dir()), corpus=CORPUS, k=3, max_new_tokens=4, show_progress=False)
    comp = rk.Compressor(CORPUS, budget=16, tokenizer=gen)
    compressed = comp(QUERIES, RUN)
    assert comp.stats["unit"].startswith("tokens")
    for qid in QUERIES:
        kept = compressed.extras["sentences"][qid]
        assert sum(gen.backend.count_tokens([s.text for s in kept])) <= 16
    result = (rk.RunStage(RUN) >> comp >> gen)(QUERIES)
    for qid in QUERIES:
        ans = result.answers[qid]
        assert ans.context == compressed.docids(qid).tolist()
        for text in compressed.extras["compressed"][qid].values():
            assert text in ans.prompt                        # the prompt holds the compressed text
        assert CORPUS["d2"] not in ans.prompt                # not the whole abstract


def test_compressed_texts_survive_rankkit_run_chunks():
    from rankkit.runner import execute

    comp, echo = rk.Compressor(CORPUS, budget=14), Echo()
    whole = (rk.RunStage(RUN) >> comp)(QUERIES).run.extras["compressed"]
    execute(rk.RunStage(RUN) >> comp >> echo, rk.Queries.coerce(QUERIES), progress=False, chunk_size=1)
    assert echo.seen == whole
