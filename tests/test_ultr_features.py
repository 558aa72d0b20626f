"""SVMlight reading with query groups, and the feature ranker trained from clicks."""

from __future__ import annotations

import numpy as np
import pytest

from rankkit.errors import DataFormatError, RankkitError
from rankkit.ultr.features import LtrData, Standardizer, read_svmlight


def test_svmlight_with_qid_tokens(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("2 qid:7 1:0.5 3:1.0 # comment\n0 qid:7 2:0.25\n\n1 qid:9 1:-1\n")
    data = read_svmlight(path)
    assert data.qids == ["7", "9"] and data.offsets.tolist() == [0, 2, 3]
    assert data.X.shape == (3, 4) and data.X[0].tolist() == [0.0, 0.5, 0.0, 1.0]
    assert data.y.tolist() == [2, 0, 1]
    assert data.qrels()["7"] == {"7-0": 2, "7-1": 0}
    run = data.run(np.array([0.1, 0.9, 0.5]))
    assert run.docids("7").tolist() == ["7-1", "7-0"]
    assert read_svmlight(path, n_features=10).X.shape == (3, 10)


def test_svmlight_with_group_file_lightgbm_layout(tmp_path):
    path = tmp_path / "rank.train"
    path.write_text("1 1:1\n0 2:1\n3 1:2\n0 1:0\n2 2:2\n")
    (tmp_path / "rank.train.query").write_text("2\n3\n")
    data = read_svmlight(path)
    assert data.qids == ["q0", "q1"] and [len(range(*data.rows(i).indices(5))) for i in range(2)] == [2, 3]
    assert data.query_index().tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("text, message, line", [
    ("1 qid:1 1:1\nx qid:1 2:1\n", "label 'x'", 2),
    ("1 qid:1 1:1\n1 qid:1 oops\n", "expected index:value", 2),
    ("1 qid:1 a:1\n", "bad feature", 1),
])
def test_svmlight_bad_lines(tmp_path, text, message, line):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_svmlight(path)
    assert err.value.line == line and str(path) in str(err.value)


def test_svmlight_bad_groups(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("1 1:1\n0 1:2\n")
    with pytest.raises(DataFormatError, match="no query groups"):
        read_svmlight(path)
    (tmp_path / "t.txt.query").write_text("3\n")
    with pytest.raises(DataFormatError, match="sum to 3"):
        read_svmlight(path)
    with pytest.raises(DataFormatError, match="exceeds n_features"):
        read_svmlight(path, n_features=1)


def test_standardizer_uses_training_statistics():
    train = np.array([[0.0, 5.0], [2.0, 5.0]], dtype=np.float32)
    std = Standardizer.fit(train)
    assert std(train).tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    assert std(np.array([[4.0, 7.0]], dtype=np.float32)).tolist() == [[3.0, 2.0]]


def _toy(seed: int = 0, n_q: int = 30, n_d: int = 8) -> LtrData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_q * n_d, 4)).astype(np.float32)
    y = np.clip(np.round(X[:, 0] * 1.5 + 1.5), 0, 4)
    return LtrData(X, y, np.arange(0, n_q * n_d + 1, n_d), [f"q{i}" for i in range(n_q)])


def test_train_on_clicks_learns_and_reports(tmp_path):
    pytest.importorskip("torch")
    from rankkit.evaluation import evaluate
    from rankkit.types import Run
    from rankkit.ultr.features import train_on_clicks, train_on_labels
    from rankkit.ultr.losses import IPS
    from rankkit.ultr.simulate import PositionBasedModel, simulate_clicks

    data = _toy()
    logging = Run.from_lists(data.qids, [data.docids[data.rows(i)] for i in range(len(data))],
                             [-np.arange(8.0)] * len(data))
    model = PositionBasedModel(eta=1.0)
    log = simulate_clicks(logging, data.qrels(), 5000, model, k=8, seed=0)
    rand = evaluate(data.run(np.random.default_rng(1).random(len(data.y))), data.qrels(), "nDCG@3")["nDCG@3"]
    # listwise / pointwise train on aggregated lists (30 here), pairwise on the 5000 sessions
    for kind, batch in (("listwise", 4), ("pointwise", 4), ("pairwise", 256)):
        res = train_on_clicks(log, data, IPS(model.examination(8), kind=kind), epochs=15, batch_size=batch,
                              hidden=(8,), lr=3e-3, seed=0)
        assert all(np.isfinite(res.losses)) and res.propensities is None
        ndcg = evaluate(res.ranker.rank(data), data.qrels(), "nDCG@3")["nDCG@3"]
        assert ndcg > rand + 0.15, (kind, ndcg, rand)  # feature 0 decides relevance
    oracle = train_on_labels(data, epochs=15, batch_size=4, hidden=(8,), lr=3e-3, seed=0)
    assert evaluate(oracle.ranker.rank(data), data.qrels(), "nDCG@3")["nDCG@3"] > rand + 0.15
    with pytest.raises(RankkitError, match="absent from the feature data"):
        train_on_clicks(log, _toy(n_q=2), IPS([1.0]), epochs=1)
