"""Generator SFT on the tiny LLM: the loss falls, the adapter folder reloads to identical greedy outputs."""

from __future__ import annotations

import pytest

import rankkit as rk
from rankkit.training.generator_data import (
    NO_INFO,
    GeneratorExample,
    answer_completion,
    balance_verdicts,
    build_examples,
)

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO"]
CORPUS = {"d1": "Aspirin lowers the risk of heart attack. It thins the blood.",
          "d2": "Cats sleep most of the day. Dogs like walks."}
QUERIES = {"c1": "Aspirin reduces heart attack risk.", "c2": "Cats never sleep."}


def examples() -> list[GeneratorExample]:
    claims = {"c1": ("SUPPORT", {"d1": "SUPPORT"}), "c2": ("CONTRADICT", {"d2": "CONTRADICT"})}
    run = rk.Run({"c1": (["d1", "d2"], [2.0, 1.0]), "c2": (["d2", "d1"], [2.0, 1.0])})
    exs, counts = build_examples(QUERIES, run, CORPUS, claims, k=2)
    assert counts["tasks"] == {"verify": 2, "answer": 2} and counts["evidence_retrieved"] == 2
    return exs


def test_answer_completion_cites_the_evidence_position():
    text = answer_completion("aspirin heart", "SUPPORT", {"d1": "SUPPORT"}, ["d2", "d1"],
                             [CORPUS["d2"], CORPUS["d1"]])
    assert text.startswith("The evidence supports the claim [2].") and "Aspirin lowers" in text
    assert answer_completion("x", "SUPPORT", {"d9": "SUPPORT"}, ["d1"], [CORPUS["d1"]]) == NO_INFO
    assert answer_completion("x", "NOT_ENOUGH_INFO", {}, ["d1"], [CORPUS["d1"]]) == NO_INFO


def test_balance_verdicts_equalises_the_verdicts_and_keeps_every_original():
    from collections import Counter

    def ex(i: int, task: str, verdict: str) -> GeneratorExample:
        return GeneratorExample(f"q{i}", task, "claim", [], [], verdict)

    exs = [ex(i, "verify", "SUPPORT") for i in range(7)] + [ex(10 + i, "verify", "CONTRADICT") for i in range(3)] \
        + [ex(20, "verify", "NOT_ENOUGH_INFO")] + [ex(30, "answer", "text")]
    out, added = balance_verdicts(exs, seed=1)
    verdicts = Counter(e.completion for e in out if e.task == "verify")
    assert verdicts == {"SUPPORT": 7, "CONTRADICT": 7, "NOT_ENOUGH_INFO": 7}
    assert added == {"CONTRADICT": 4, "NOT_ENOUGH_INFO": 6, "SUPPORT": 0}
    assert all(e in out for e in exs) and sum(e.task == "answer" for e in out) == 1
    contra = Counter(e.qid for e in out if e.completion == "CONTRADICT")    # 7 = 2 whole copies + 1 sampled
    assert sorted(contra.values()) == [2, 2, 3]
    again, _ = balance_verdicts(exs, seed=1)
    assert [e.qid for e in again] == [e.qid for e in out]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from rankkit.training.generator_train import train_generator
    from tests.tiny_llm import tiny_llm_dir

    folder = tmp_path_factory.mktemp("gen") / "adapter"
    res = train_generator(str(tiny_llm_dir()), examples(), folder, steps=8,
                          adapter_options={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
                          options={"learning_rate": 3e-2, "batch_size": 4, "max_length": 256}, labels=LABELS)
    return res


def test_sft_lowers_the_loss_and_writes_a_manifest(trained):
    from rankkit.folders import read_manifest

    losses = trained.losses()
    assert len(losses) == 8 and losses[-1] < losses[0]
    man = read_manifest(trained.folder, "generator-adapter")
    assert man["method"] == "lora" and man["options"]["r"] == 4
    assert man["training"]["steps"] == 8 and man["training"]["completion_only_loss"] is True
    assert man["base_fingerprint"] and man["training"]["rows"] == 4


def test_adapter_reloads_to_identical_greedy_outputs(trained):
    from tests.tiny_llm import tiny_llm_dir

    run = rk.Run({"c1": (["d1", "d2"], [2.0, 1.0]), "c2": (["d2", "d1"], [2.0, 1.0])})
    opts = dict(corpus=CORPUS, k=2, max_new_tokens=8, show_progress=False)
    live = rk.Generator(trained.model, tokenizer=trained.tokenizer, **opts)
    loaded = rk.Generator(str(trained.folder), **opts)
    plain = rk.Generator(str(tiny_llm_dir()), adapter=str(trained.folder), **opts)
    a, b, c = (g(QUERIES, run).answers for g in (live, loaded, plain))
    assert [a[q].text for q in QUERIES] == [b[q].text for q in QUERIES] == [c[q].text for q in QUERIES]
    assert loaded.params()["adapter"] == str(trained.folder)
    cls = rk.Generator(str(trained.folder), mode="classify", labels=LABELS, corpus=CORPUS, k=2,
                       show_progress=False)(QUERIES, run).answers
    assert all(x.label in LABELS for x in cls.values())


def test_summarize_mode_produces_text(trained):
    gen = rk.Generator(str(trained.folder), mode="summarize", corpus=CORPUS, k=2, max_new_tokens=6,
                       show_progress=False)
    comp = rk.Compressor(CORPUS, budget=12, tokenizer=gen)
    out = (rk.RunStage(rk.Run({"c1": (["d1", "d2"], [2.0, 1.0])})) >> comp >> gen)({"c1": QUERIES["c1"]})
    ans = out.answers["c1"]
    assert ans.text and ans.error is None and "Summarise" in ans.prompt and gen.params()["mode"] == "summarize"


def test_bad_input(trained, tmp_path):
    from rankkit.training.generator_train import train_generator
    from tests.tiny_llm import tiny_llm_dir

    other = tiny_llm_dir(max_positions=256)                    # another base model
    with pytest.raises(rk.ConfigError, match="trained on base model"):
        rk.Generator(str(other), adapter=str(trained.folder))
    with pytest.raises(rk.ConfigError, match="not a loaded model"):
        rk.Generator(trained.model, tokenizer=trained.tokenizer, adapter=str(trained.folder))
    with pytest.raises(rk.ConfigError, match="transformers backend"):
        rk.Generator(str(trained.folder), backend="openai")
    with pytest.raises(rk.ConfigError, match="not 'full'"):
        train_generator(str(other), examples(), tmp_path / "x", steps=1, method="full")
    with pytest.raises(rk.ConfigError, match="steps"):
        train_generator(str(other), examples(), tmp_path / "x", steps=0)
    with pytest.raises(rk.ConfigError, match="unknown generator training option"):
        train_generator(str(other), examples(), tmp_path / "x", steps=1, options={"lr": 1})
    with pytest.raises(rk.ConfigError, match="at least one example"):
        train_generator(str(other), [], tmp_path / "x", steps=1)
    with pytest.raises(rk.ConfigError, match="no room"):
        train_generator(str(other), examples(), tmp_path / "x", steps=1, options={"max_length": 4})


def test_long_examples_are_truncated_and_counted():
    from rankkit.llm.loading import load_causal_lm
    from rankkit.training.generator_data import sft_rows
    from tests.tiny_llm import tiny_llm_dir

    model, tok = load_causal_lm(str(tiny_llm_dir()))
    long = [GeneratorExample("c1", "verify", "claim", ["d1"], ["word " * 400], "SUPPORT")]
    rows, stats = sft_rows(long, model, tok, 128, LABELS)
    assert stats["truncated_examples"] == 1 and stats["truncated_passages"] == 1
    assert len(tok(rows["prompt"][0] + rows["completion"][0])["input_ids"]) <= 128


def write_beir(tmp_path):
    """A two-claim SciFact-style BEIR folder (corpus, queries, train qrels, claims)."""
    import json

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                               for d, t in CORPUS.items()))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                for q, t in QUERIES.items()))
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nc1\td1\t1\nc2\td2\t1\n")
    (beir / "claims.jsonl").write_text(
        json.dumps({"query-id": "c1", "split": "train", "verdict": "SUPPORT", "evidence": {"d1": "SUPPORT"}})
        + "\n" + json.dumps({"query-id": "c2", "split": "train", "verdict": "NOT_ENOUGH_INFO", "evidence": {}})
        + "\n")
    return beir


def test_recipe_trains_on_the_compressed_context(tmp_path):
    """data.compress: the passages are the Compressor's kept sentences, as at inference."""
    from rankkit.training.generator_recipe import build_data
    from tests.tiny_llm import tiny_llm_dir

    beir = write_beir(tmp_path)
    data = {"path": str(beir), "claims": str(beir / "claims.jsonl"), "k": 2, "tasks": ["verify"]}
    full, _ = build_data(dict(data), str(tiny_llm_dir()))
    short, info = build_data({**data, "compress": 8}, str(tiny_llm_dir()))
    assert info["compress"] == 8 and info["compressor"]["tokens_out"] < info["compressor"]["tokens_in"]
    for f, c in zip(full, short):
        assert f.qid == c.qid and f.completion == c.completion
        assert sum(map(len, c.passages)) < sum(map(len, f.passages))
        for passage in c.passages:            # every kept text is made of sentences of the full passages
            assert passage and passage.split(". ")[0].rstrip(".") in " ".join(f.passages)


def test_train_generator_cli_end_to_end(tmp_path, capsys):
    import json

    from rankkit.cli import main
    from tests.tiny_llm import tiny_llm_dir

    write_beir(tmp_path)
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(f"base_model: {tiny_llm_dir()}\noutput_dir: out\nthreads: 1\n"
                   f"data: {{path: beir, k: 2}}\nadapter: {{method: lora, options: {{r: 2}}}}\n"
                   "train: {steps: 2, batch_size: 2, max_length: 256}\n")
    with pytest.raises(SystemExit) as ok:
        main(["train", "generator", "--config", str(cfg), "--json", "-q"])
    assert ok.value.code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 2 and res["data"]["examples"] == 4 and res["data"]["verdicts"] == \
        {"SUPPORT": 1, "NOT_ENOUGH_INFO": 1}
    from rankkit.folders import read_manifest

    assert read_manifest(tmp_path / "out", "generator-adapter")["training"]["source"] == \
        {"split": "train", "k": 2, "retriever": "bm25"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {path: beir}\ntrain: {steps: 1}\nwrongkey: 1\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "generator", "--config", str(bad)])
    assert exc.value.code == 2 and "wrongkey" in capsys.readouterr().err
    bad.write_text("data: {path: beir, compress: 0}\ntrain: {steps: 1}\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "generator", "--config", str(bad)])
    assert exc.value.code == 2 and "bad.yaml: data.compress must be a token budget" in capsys.readouterr().err
    bad.write_text("data: {path: beir, balance: 3}\ntrain: {steps: 1}\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "generator", "--config", str(bad)])
    assert exc.value.code == 2 and "bad.yaml: data.balance must be true or false" in capsys.readouterr().err
