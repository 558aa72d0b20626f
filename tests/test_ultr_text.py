"""Text rerankers trained from click logs: the ``clicks`` source and the naive / IPS / DLA objectives."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_cli import rankkit  # noqa: E402
from tiny_models import build_tiny_bert  # noqa: E402

import rankkit as rk  # noqa: E402
from rankkit.errors import ConfigError, DataFormatError  # noqa: E402
from rankkit.training.click_data import ClickList, click_lists  # noqa: E402
from rankkit.ultr.clicklog import read_click_log  # noqa: E402

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
PAIRS = (["what is beta", "what is gamma", "what is omega"], ["beta is a letter", "cats", "gamma river"])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "base")


def _write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture()
def files(tmp_path):
    """corpus.jsonl (d0..d11), queries.jsonl, and a click log: 6 queries x 5 results, clicks on the
    relevant document (the one naming the query's word) more often near the top."""
    docs = [{"_id": f"d{i}", "title": "", "text": f"{WORDS[i % 6]} is a letter" if i < 6 else f"cats {i}"}
            for i in range(12)]
    _write_jsonl(tmp_path / "corpus.jsonl", docs)
    _write_jsonl(tmp_path / "queries.jsonl", [{"_id": f"q{i}", "text": f"what is {w}"} for i, w in enumerate(WORDS)])
    rng = np.random.default_rng(0)
    sessions = []
    for s in range(120):
        q = s % 6
        shown = [f"d{6 + (q + j) % 6}" for j in range(4)]
        rel_rank = q % 5
        shown.insert(rel_rank, f"d{q}")
        exam = 1.0 / np.arange(1, 6)
        p = exam * np.where(np.arange(5) == rel_rank, 1.0, 0.1)
        sessions.append({"qid": f"q{q}", "docids": shown, "clicks": (rng.random(5) < p).astype(int).tolist()})
    log = _write_jsonl(tmp_path / "clicks.jsonl", sessions)
    return {"corpus": str(tmp_path / "corpus.jsonl"), "queries": str(tmp_path / "queries.jsonl"), "log": log}


def _config(tmp_path, base, files, loss, name="cfg", **over) -> str:
    import yaml

    cfg = {"base_model": str(base), "output_dir": str(tmp_path / f"model-{name}"), "max_length": 32,
           "adapter": {"method": "lora", "options": {"r": 4}}, "loss": loss,
           "data": [{"source": "clicks", "path": files["log"], "corpus": files["corpus"],
                     "queries": files["queries"]}],
           "train": {"steps": 3, "batch_size": 2, "lr": 1e-3, "threads": 1, "logging_steps": 1, "seed": 5}}
    cfg.update(over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _run(path: str):
    from rankkit.training.config import load_config, run_config

    return run_config(load_config(path))


def _manifest(folder) -> dict:
    return json.loads((folder / "rankkit.json").read_text())


# ------------------------------------------------------------------ the clicks source
def test_click_source_builds_rank_indexed_lists(files):
    corpus = rk.datasets.read_corpus(files["corpus"])
    log = read_click_log(files["log"])
    queries = rk.datasets.read_queries(files["queries"])
    lists, rep = click_lists(log, corpus, queries, aggregate=True)
    assert rep.skipped == {} and len(lists) == 6
    by_q = {x.qid: x for x in lists}
    q2 = by_q["q2"]
    assert q2.query == "what is gamma" and q2.positions == [1, 2, 3, 4, 5]
    assert q2.docs[2] == "gamma is a letter" and q2.docs[0] == "cats 8"   # display order kept
    assert q2.weight == 20.0                                             # 120 sessions over 6 queries
    sessions = log.subset(log.qids == "q2")
    np.testing.assert_allclose(q2.clicks, sessions.clicks.mean(0))       # click-through rates
    # per session: one list each, 0/1 clicks, weight 1; sessions without clicks are counted skips
    per_session, rep2 = click_lists(log, corpus, queries, aggregate=False)
    no_clicks = int((log.clicks.sum(1) == 0).sum())
    assert no_clicks > 0 and rep2.skipped == {"lists without clicks": no_clicks}
    assert len(per_session) == len(log) - no_clicks
    assert all(x.weight == 1.0 and set(x.clicks) <= {0.0, 1.0} for x in per_session)


def test_missing_documents_keep_the_other_ranks(files):
    corpus = {f"d{i}": f"text {i}" for i in range(12) if i != 8}        # d8 is q2's rank-1 result
    lists, rep = click_lists(read_click_log(files["log"]), corpus, rk.datasets.read_queries(files["queries"]),
                             max_rank=4)
    q2 = next(x for x in lists if x.qid == "q2")
    assert q2.positions == [2, 3, 4] and q2.docs[0] == "text 9"
    assert rep.skipped["displayed documents missing from the corpus"] > 0
    assert rep.skipped["results past rank 4 dropped"] == 6                # one per aggregated list
    # no query text anywhere: counted, not guessed
    lists, rep = click_lists(read_click_log(files["log"]), corpus, None)
    assert lists == [] and rep.skipped == {"lists without query text (no 'query' in the log, qid not in queries)": 6}


def test_click_list_validates():
    with pytest.raises(rk.errors.RankkitError, match="increasing"):
        ClickList("q", ["a", "b"], [1, 0], [2, 1])
    with pytest.raises(ConfigError, match="loss: naive, ips or dla"):
        ClickList("q", ["a"], [1], [1]).labels  # noqa: B018  (a listwise objective reads .labels)


# -------------------------------------------------------------- training end to end
def _in_memory_scores(captured: dict) -> np.ndarray:
    from rankkit.rerankers.heads import relevance_logit

    tok, model = captured["tok"], captured["model"]
    enc = tok(*PAIRS, truncation="only_second", max_length=32, padding=True, return_tensors="pt")
    with torch.no_grad():
        return relevance_logit(model(**enc).logits).float().numpy()


@pytest.fixture()
def capture(monkeypatch):
    """Scores of the trained model in memory, just before it is saved."""
    from rankkit.training.click_objectives import ClickObjective

    captured: dict = {}
    save = ClickObjective.save

    def spy(self, model, tokenizer, folder, **manifest):
        captured.update(model=model, tok=tokenizer)
        captured["scores"] = _in_memory_scores(captured)
        return save(self, model, tokenizer, folder, **manifest)

    monkeypatch.setattr(ClickObjective, "save", spy)
    return captured


@pytest.mark.parametrize("loss", [
    "naive",
    {"name": "naive", "options": {"kind": "pairwise"}},
    {"name": "ips", "options": {"propensities": [1.0, 0.5, 0.33, 0.25, 0.0], "max_weight": 10}},
    {"name": "ips", "options": {"propensities": [1.0, 0.5, 0.33, 0.25, 0.2], "kind": "pointwise"}},
    {"name": "dla", "options": {"propensity_lr": 0.1}},
])
def test_click_objectives_train_and_reload(base, tmp_path, files, capture, loss):
    res = _run(_config(tmp_path, base, files, loss))
    assert res.steps == 3 and res.final_loss is not None and np.isfinite(res.final_loss)
    reloaded = rk.CrossEncoder(res.folder, show_progress=False).predict(*PAIRS)
    np.testing.assert_allclose(reloaded, capture["scores"], atol=1e-5)
    man = _manifest(res.folder)["training"]
    name = loss if isinstance(loss, str) else loss["name"]
    assert man["loss"] == name and man["objective"]["name"] == name
    assert man["data"]["sources"][0]["source"] == "clicks" and man["data"]["sources"][0]["lists"] == 6


def test_dla_trains_and_saves_its_propensities(base, tmp_path, files):
    cfg = _config(tmp_path, base, files, {"name": "dla", "options": {"propensity_lr": 0.2}},
                  train={"steps": 6, "batch_size": 3, "lr": 1e-3, "threads": 1, "seed": 1, "save_steps": 3})
    res = _run(cfg)
    props = _manifest(res.folder)["training"]["objective"]["propensities"]
    assert len(props) == 5 and props[0] == 1.0
    assert max(abs(p - 1.0) for p in props[1:]) > 0.05, "DLA's propensity logits did not train"
    # the checkpoint carries them, and a resumed run ends where the uninterrupted one did
    state = json.loads((tmp_path / "model-cfg.checkpoints" / "checkpoint-3" / "click_objective.json").read_text())
    assert len(state["logits"]) == 5
    shutil.rmtree(tmp_path / "model-cfg.checkpoints" / "checkpoint-6")
    shutil.rmtree(res.folder)
    again = _run(cfg)
    np.testing.assert_allclose(_manifest(again.folder)["training"]["objective"]["propensities"], props, atol=1e-5)


def test_dla_parameters_reach_the_optimizer(base, tmp_path, files):
    """The objective form (objective: {name: dla}) works too, and the Trainer's optimiser steps the logits."""
    from rankkit.training.click_objectives import DLAObjective
    from rankkit.training.config import build_groups, load_config
    from rankkit.training.trainer import TrainOptions, train

    cfg = load_config(_config(tmp_path, base, files, None, objective={"name": "dla"}))
    groups, _ = build_groups(cfg)
    obj = DLAObjective(propensity_lr=0.2)
    res = train(groups, str(base), tmp_path / "out", objective=obj,
                options=TrainOptions(steps=2, batch_size=2, lr=1e-3, threads=1, seed=0), max_length=32)
    logits = obj.loss.logits.detach().numpy()
    assert res.steps == 2 and np.abs(logits).max() > 0.1 and obj.loss.logits.grad is None


def test_cli_trains_from_a_click_log(base, tmp_path, files):
    out = rankkit("train", "reranker", "--config", _config(tmp_path, base, files, "dla"), "--json").stdout
    assert '"steps": 3' in out
    assert _manifest(tmp_path / "model-cfg")["training"]["objective"]["name"] == "dla"


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("over,message", [
    ({"loss": "ips"}, "needs 'propensities'"),
    ({"loss": {"name": "ips", "options": {"propensities": "pbm"}}}, "must be a list of numbers"),
    ({"loss": {"name": "dla", "options": {"kind": "pairwise"}}}, "listwise"),
    ({"loss": "dla", "objective": {"name": "listwise"}}, "cannot also use objective"),
    ({"loss": "softmax_ce"}, "loss: naive, ips or dla"),
    ({"loss": {"name": "dla", "options": {"ranks": 3}}}, "raise 'ranks'"),
])
def test_config_errors_are_one_line(base, tmp_path, files, over, message):
    proc = rankkit("train", "reranker", "--config", _config(tmp_path, base, files, **{"loss": None, **over}),
                   ok=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_click_logs(base, tmp_path, files):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "q0", "docids": ["d0", "d1"], "clicks": [1, 0]}\n'
                   '{"qid": "q1", "docids": ["d1", "d2"], "clicked_positions": [3]}\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl.*line 2.*past the displayed list"):
        _run(_config(tmp_path, base, {**files, "log": str(bad)}, "naive"))
    # nothing in the corpus, or no clicks at all: a ConfigError naming the file and the counts
    gone = tmp_path / "gone.jsonl"
    gone.write_text('{"qid": "q0", "docids": ["x1", "x2"], "clicks": [1, 0]}\n')
    with pytest.raises(ConfigError, match=r"gone.jsonl: no usable click list .*1 lists with no document in the corpus"):
        _run(_config(tmp_path, base, {**files, "log": str(gone)}, "naive"))
    silent = tmp_path / "silent.jsonl"
    silent.write_text('{"qid": "q0", "docids": ["d0", "d1"], "clicks": [0, 0]}\n')
    with pytest.raises(ConfigError, match="1 lists without clicks"):
        _run(_config(tmp_path, base, {**files, "log": str(silent)}, "dla"))


def test_click_objective_rejects_labelled_groups(base, tmp_path):
    from rankkit.training.data import Group
    from rankkit.training.trainer import TrainOptions, train

    with pytest.raises(ConfigError, match=r"trains on click logs \(data: source: clicks\)"):
        train([Group("q", ["a", "b"], [1.0, 0.0])], str(base), tmp_path / "x", objective="naive",
              options=TrainOptions(steps=1))


def test_dla_loss_is_finite_when_rank_one_is_missing():
    from rankkit.ultr.losses import DLA

    dla = DLA(4)
    scores = torch.tensor([[0.0, 2.0, -1.0, 0.5]], requires_grad=True)
    mask = torch.tensor([[False, True, True, True]])
    loss = dla(scores, torch.tensor([[0.0, 1.0, 0.0, 0.0]]), mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(scores.grad).all() and torch.isfinite(dla.logits.grad).all()


def test_shipped_click_recipe_validates():
    from rankkit.training.config import load_config, objective_and_loss

    from conftest import ROOT

    cfg = load_config(ROOT / "configs" / "minilm-scifact-clicks-dla.yaml")
    name, options, *_ = objective_and_loss(cfg)
    assert name == "dla" and options["ranks"] == 10 and cfg["data"][0]["source"] == "clicks"
