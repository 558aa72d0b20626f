"""Dense retriever training (issue 17): training helps, mining is dynamic, the guard drops
false negatives, a saved retriever reloads to identical embeddings, bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dense_fixtures import fixture_few_threads, fixture_tiny_model  # noqa: F401  (fixtures)
from retriever_fixtures import toy_dataset, write_beir

import rankkit as rk
from rankkit.errors import ConfigError
from rankkit.training.retriever import load_model, train_retriever
from rankkit.training.retriever_config import (
    NegativesOptions,
    RetrieverTrainOptions,
    parse_recipe,
)
from rankkit.training.retriever_data import (
    Example,
    FalseNegativeGuard,
    build_examples,
    mine_negatives,
    rank_with_model,
)
from rankkit.training.retriever_mining import Miner

LORA = {"r": 8, "lora_alpha": 16, "target_modules": ["query", "key", "value", "dense"]}


def _opts(steps: int = 20, lr: float = 1e-2) -> RetrieverTrainOptions:
    return RetrieverTrainOptions(steps=steps, batch_size=8, lr=lr, logging_steps=1, show_progress=False)


def _mrr(model, ds) -> float:
    ranking = rank_with_model(model, ds, ds.queries.ids, len(ds.corpus))
    return float(np.mean([1 / (ranking[q].index(f"d{q[1:]}") + 1) for q in ds.queries.ids]))


@pytest.fixture(scope="module", name="toy")
def fixture_toy():
    return toy_dataset()


@pytest.fixture(scope="module", name="lora_run")
def fixture_lora_run(tiny_model, toy, tmp_path_factory):
    """One LoRA training on the toy set with static BM25 negatives (shared by several tests)."""
    before = _mrr(load_model(str(tiny_model)), toy)
    out = tmp_path_factory.mktemp("lora") / "retriever"
    res = train_retriever(toy, out, base_model=str(tiny_model), method="lora", adapter_options=LORA,
                          negatives=NegativesOptions(mine_from="bm25", num_negatives=2, depth=10,
                                                     teacher=None),
                          options=_opts(40), teacher=None)
    return res, before


def test_lora_training_lowers_the_loss_and_improves_ranking(lora_run, toy):
    res, before = lora_run
    assert res.steps == 40 and res.method == "lora"
    assert np.mean(res.losses[-10:]) < np.mean(res.losses[:5])
    assert 0 < res.trainable < res.total / 2          # an adapter, not the whole model
    after = _mrr(rk.retrievers.encoder.SentenceEncoder(str(res.folder)).model, toy)
    assert after > before and after >= 0.9


def test_saved_adapter_reloads_to_identical_embeddings_and_index_records_it(lora_run, toy, tiny_model,
                                                                             tmp_path):
    from rankkit.retrievers.encoder import SentenceEncoder

    res, _ = lora_run
    manifest = json.loads((res.folder / "rankkit.json").read_text())
    assert manifest["kind"] == "dense-retriever-adapter" and manifest["method"] == "lora"
    assert manifest["base_model"] == str(tiny_model) and manifest["training"]["steps"] == 40
    assert (res.folder / "adapter_model.safetensors").exists()
    texts = toy.corpus.contents
    a, _ = SentenceEncoder(str(res.folder)).encode_documents(texts)
    b, _ = SentenceEncoder(str(res.folder)).encode_documents(texts)
    np.testing.assert_array_equal(a, b)
    base, _ = SentenceEncoder(str(tiny_model)).encode_documents(texts)
    assert not np.allclose(a, base, atol=1e-4)     # the adapter is applied
    dense = rk.DenseRetriever.build(toy.corpus, model=str(res.folder))
    np.testing.assert_allclose(dense.embeddings, a, atol=1e-6)   # building re-encodes with the adapter
    assert dense.config["trained"]["method"] == "lora"
    assert dense.config["model_fingerprint"] == SentenceEncoder(str(res.folder)).fingerprint() != \
        SentenceEncoder(str(tiny_model)).fingerprint()
    dense.save(tmp_path / "idx")
    loaded = rk.DenseRetriever.load(tmp_path / "idx", corpus=toy.corpus)
    assert loaded.config["trained"]["kind"] == "dense-retriever-adapter"
    assert (loaded % 3)(toy.queries) == (dense % 3)(toy.queries)


def test_full_fine_tuning_saves_a_model_that_reloads_identically(tiny_model, toy, tmp_path):
    from rankkit.retrievers.encoder import SentenceEncoder

    opts = _opts(6, 1e-3)
    opts.max_seq_length = 16                           # a shorter window for training only
    res = train_retriever(toy, tmp_path / "full", base_model=str(tiny_model), method="full",
                          negatives=NegativesOptions(mine_from="none"), options=opts, teacher=None)
    manifest = json.loads((res.folder / "rankkit.json").read_text())
    assert manifest["kind"] == "dense-retriever" and res.trainable == res.total
    assert manifest["max_seq_length"] == 64 == SentenceEncoder(str(res.folder)).max_seq_length
    assert res.mining == []                            # in-batch negatives only
    enc = SentenceEncoder(str(res.folder))
    a, _ = enc.encode_documents(toy.corpus.contents)
    b, _ = SentenceEncoder(str(res.folder)).encode_documents(toy.corpus.contents)
    np.testing.assert_array_equal(a, b)
    assert enc.fingerprint() != SentenceEncoder(str(tiny_model)).fingerprint()


def test_dynamic_mining_changes_the_negatives_between_rounds(tiny_model, toy, tmp_path):
    # depth == num_negatives: no sampling, so only the model's ranking can change the negatives
    neg = NegativesOptions(mine_from="model", num_negatives=2, depth=2, refresh_every=5, teacher=None)
    examples, _ = build_examples(toy)
    model = load_model(str(tiny_model))
    miner = Miner(examples, toy, neg)
    miner.round(model, 0)
    first = [set(n) for n in miner.table.negatives]
    res = train_retriever(toy, tmp_path / "dyn", base_model=str(tiny_model), method="full",
                          negatives=neg, options=_opts(16, 1e-3), teacher=None)
    assert [r["step"] for r in res.mining] == [0, 5, 10, 15]
    assert res.mining[0]["source"] == "model" and res.mining[0]["changed_examples"] is None
    assert sum(r["changed_examples"] for r in res.mining[1:]) > 0
    # the trained model mines other negatives than the untrained one did in round 0
    trained = load_model(str(res.folder))
    again = Miner(examples, toy, neg)
    again.round(trained, 0)
    assert [set(n) for n in again.table.negatives] != first
    for ex, negs in zip(examples, again.table.negatives):
        assert ex.positive not in negs and len(negs) == 2


def test_false_negative_guard_drops_negatives_the_teacher_scores_above_the_positive(toy):
    # q0's positive is d0; the fake teacher says d1 is more relevant to q0 than d0 (an unjudged positive)
    def teacher(queries, docs):
        return np.array([5.0 if d == toy.corpus["d1"] else (2.0 if d == toy.corpus["d0"] else 0.0)
                         for d in docs])

    calls = []
    guard = FalseNegativeGuard(lambda q, d: calls.append(len(d)) or teacher(q, d))
    examples = [Example("q0", toy.queries["q0"], "d0")]
    ranking = {"q0": ["d0", "d1", "d2", "d3", "d4"]}
    negs, counts = mine_negatives(examples, ranking, toy, num_negatives=2, depth=5, guard=guard,
                                  oversample=2)
    assert "d1" not in negs[0] and len(negs[0]) == 2 and "d0" not in negs[0]
    assert counts["false_negatives"] == 1 and guard.dropped_total == 1
    mine_negatives(examples, ranking, toy, num_negatives=2, depth=5, guard=guard, oversample=2)
    assert len(calls) == 1                               # scores are cached per (qid, docid)
    # margin: also drop negatives within `margin` of the positive
    strict = FalseNegativeGuard(lambda q, d: np.array([2.0 if x == toy.corpus["d0"] else 1.5 for x in d]),
                                margin=1.0)
    _, counts = mine_negatives(examples, ranking, toy, num_negatives=2, depth=5, guard=strict)
    assert counts["false_negatives"] == 4 and counts["random_fill"] == 2


def test_bad_input_is_counted_not_trained_on(toy):
    ds = rk.Dataset(rk.Corpus([*toy.corpus.ids, "dup"], [*toy.corpus.contents, toy.corpus["d0"]]),
                    rk.Queries({**dict(toy.queries.items()), "qx": "no positive here", "qe": " "}),
                    rk.Qrels({**dict(toy.qrels.items()), "qx": {"d1": 0}, "qe": {"d2": 1},
                              "qm": {"missing": 1}}))
    examples, report = build_examples(ds)
    assert len(examples) == 16
    assert report.skipped == {"queries with no positive": 1, "queries without text": 2}
    # a negative whose text equals the positive's is never used
    negs, counts = mine_negatives([Example("q0", ds.queries["q0"], "d0")], {"q0": ["dup", "d3", "d4"]},
                                  ds, num_negatives=1, depth=3)
    assert negs == [["d3"]] or negs == [["d4"]]
    assert counts["identical_to_positive"] == 1


@pytest.mark.parametrize("cfg, message", [
    ({"adapter": {"method": "lorax"}}, "unknown adapter method 'lorax'"),
    ({"loss": {"name": "triplet"}}, "unknown loss 'triplet'"),
    ({"negatives": {"num_negatives": 0}}, "negatives.num_negatives must be an integer >= 1"),
    ({"negatives": {"depth": 5, "skip_top": 5}}, "must exceed skip_top"),
    ({"negatives": {"mine_from": "none", "refresh_every": 10}}, "refresh_every needs mined negatives"),
    ({"negatives": {"refresh": 10}}, "unknown option(s) ['refresh']"),
    ({"train": {"batch_size": 1}}, "batch_size must be >= 2"),
    ({"train": {"stepz": 1}}, "unknown option(s) ['stepz']"),
    ({"adapter": {"method": "full", "options": {"r": 4}}}, "full fine-tuning takes no adapter options"),
    ({"extra": 1}, "unknown key(s) ['extra']"),
    ({"data": {"path": "x", "splitt": "train"}}, "data: unknown key(s) ['splitt']"),
    ({"index": {"output_dir": "i", "type": "annoy"}}, "unknown dense index type 'annoy'"),
    ({"index": {"output_dir": "i", "options": {"nprobe": 4}}}, "unknown option(s) for a 'flat' index"),
    ({"index": {"type": "flat"}}, "index must be a mapping with an 'output_dir'"),
])
def test_bad_config_is_refused_with_the_field_named(cfg, message):
    base = {"base_model": "minilm", "output_dir": "out", "data": {"path": "beir"}}
    with pytest.raises(ConfigError) as e:
        parse_recipe({**base, **cfg}, "cfg.yaml")
    assert message in str(e.value) and "cfg.yaml" in str(e.value)


def test_missing_required_key_and_unknown_adapter_option(tiny_model, toy, tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'data'"):
        parse_recipe({"base_model": "minilm", "output_dir": "out"})
    with pytest.raises(ConfigError, match="bad option for adapter 'lora'"):
        train_retriever(toy, tmp_path / "x", base_model=str(tiny_model), adapter_options={"rank": 4},
                        negatives=NegativesOptions(mine_from="none"), options=_opts(1), teacher=None)


def test_cli_trains_from_a_recipe(tiny_model, toy, tmp_path, capsys):
    from rankkit.cli import main

    beir = write_beir(tmp_path / "beir", toy)
    (tmp_path / "r.yaml").write_text(
        f"base_model: {tiny_model}\noutput_dir: out/retriever\n"
        "adapter: {method: lora, options: {r: 4, target_modules: [query, value]}}\n"
        "loss: {name: cached_mnrl, options: {mini_batch_size: 4}}\n"
        f"data: {{path: {beir.name}, split: train}}\n"
        "negatives: {mine_from: bm25, num_negatives: 1, depth: 5, teacher: none}\n"
        "train: {steps: 3, batch_size: 4, lr: 1.0e-3, logging_steps: 1}\n"
        "index: {output_dir: idx/trained, type: hnsw, options: {M: 8}}\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "retriever", "--config", str(tmp_path / "r.yaml"), "--json", "-q"])
    out = capsys.readouterr().out
    assert exc.value.code in (0, None)
    summary = json.loads(out)
    assert summary["steps"] == 3 and summary["method"] == "lora" and summary["mining_rounds"] == 1
    assert (tmp_path / "out" / "retriever" / "rankkit.json").exists()
    index = json.loads((tmp_path / "idx" / "trained" / "rankkit.json").read_text())  # re-encoded after training
    assert summary["index"] == str(tmp_path / "idx" / "trained")
    assert index["trained"]["method"] == "lora" and index["index"]["type"] == "hnsw"
    assert index["model"] == str(tmp_path / "out" / "retriever")


@pytest.mark.parametrize("method, options", [("adalora", {"target_modules": ["query", "value"]}), ("ia3", {})])
def test_other_registered_adapter_methods_train_and_reload(method, options, tiny_model, toy, tmp_path):
    from rankkit.retrievers.encoder import SentenceEncoder

    # a shared guard (as eval/train_retriever.py passes one) reuses its scores across trainings
    guard = FalseNegativeGuard(lambda q, d: np.zeros(len(d)), name="zeros")
    res = train_retriever(toy, tmp_path / method, base_model=str(tiny_model), method=method,
                          adapter_options=options, negatives=NegativesOptions(num_negatives=1, depth=5),
                          options=_opts(3, 1e-3), teacher=guard)
    assert all(np.isfinite(res.losses)) and 0 < res.trainable < res.total
    manifest = json.loads((res.folder / "rankkit.json").read_text())
    assert manifest["method"] == method and manifest["training"]["negatives"]["teacher"] == "zeros"
    assert len(guard.cache) > 0
    a, _ = SentenceEncoder(str(res.folder)).encode_documents(toy.corpus.contents)
    b, _ = SentenceEncoder(str(res.folder)).encode_documents(toy.corpus.contents)
    np.testing.assert_array_equal(a, b)


def test_adapter_over_a_changed_base_model_is_refused(lora_run, tmp_path):
    import shutil

    from rankkit.retrievers.encoder import SentenceEncoder

    res, _ = lora_run
    copy = shutil.copytree(res.folder, tmp_path / "copy")
    manifest = json.loads((copy / "rankkit.json").read_text())
    manifest["base_fingerprint"] = "0" * 16
    (copy / "rankkit.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="trained on another version of its base model"):
        SentenceEncoder(str(copy))
