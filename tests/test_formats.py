"""Loaders for BEIR, TREC and MS MARCO formats, on the real shared collections."""

from __future__ import annotations

import gzip

import pytest

import rankkit as rk
from rankkit.datasets import (
    load_beir,
    load_trec,
    read_corpus,
    read_qrels,
    read_queries,
    read_trec_topics,
    read_triples,
)
from rankkit.errors import DataFormatError, MissingResourceError

from conftest import shared


def test_beir_scifact_counts(scifact):
    assert len(scifact.corpus) == 5183
    assert len(scifact.queries) == 300
    assert sum(len(v) for v in scifact.qrels.values()) == 339
    assert scifact.corpus.title("4983").startswith("Microstructural development")
    assert set(scifact.queries) == set(scifact.qrels)


def test_beir_train_split_and_all_queries():
    train = load_beir(shared("beir", "scifact"), split="train")
    assert len(train.queries) == 809 and sum(len(v) for v in train.qrels.values()) == 919
    every = load_beir(shared("beir", "scifact"), split="test", all_queries=True)
    assert len(every.queries) == 1109


def test_beir_missing_split_names_available(tmp_path):
    with pytest.raises(MissingResourceError, match="no qrels for split 'dev' \\(available: test, train\\)"):
        load_beir(shared("beir", "scifact"), split="dev")


def test_cranfield_graded_qrels():
    ds = load_beir(shared("beir", "cranfield"))
    assert len(ds.corpus) == 1400 and len(ds.queries) == 225
    assert sum(len(v) for v in ds.qrels.values()) == 1837
    assert ds.qrels["1"]["184"] == 3


def test_vaswani_trec_sgml():
    v = shared("trec", "vaswani")
    ds = load_trec(v / "doc-text.trec", v / "query-text.trec", v / "qrels")
    assert len(ds.corpus) == 11429 and len(ds.queries) == 93
    assert sum(len(x) for x in ds.qrels.values()) == 2083
    assert ds.corpus["1"].startswith("compact memories have flexible capacities")
    assert ds.queries["1"] == "MEASUREMENT OF DIELECTRIC CONSTANT OF LIQUIDS BY THE USE OF MICROWAVE TECHNIQUES"


def test_dl19_tsv_topics_and_q0_qrels():
    d = shared("trec", "dl19-passage")
    topics = read_trec_topics(d / "topics.dl19-passage.txt")
    assert topics["156493"] == "do goldfish grow"
    qrels = read_qrels(d / "qrels.dl19-passage.txt")
    assert qrels["19335"]["1017759"] == 0
    assert max(g for docs in qrels.values() for g in docs.values()) == 3


def test_gzipped_topics_match_beir_queries(scifact):
    d = shared("trec", "beir-test-qrels")
    topics = read_queries(d / "topics.beir-v1.0.0-scifact.test.tsv.gz")
    qrels = read_qrels(d / "qrels.beir-v1.0.0-scifact.test.txt")
    assert len(topics) == 300 and topics["1"] == scifact.queries["1"]
    assert qrels == scifact.qrels


def test_sgml_topics_gzipped(tmp_path):
    p = tmp_path / "topics.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("<top>\n<num> Number: 301\n<title> International Organized Crime\n<desc> ...\n</top>\n")
    assert read_queries(p)["301"] == "International Organized Crime"


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "corpus.jsonl"
    p.write_text('{"_id": "1", "text": "ok"}\n{"_id": "2", "text": broken}\n')
    with pytest.raises(DataFormatError, match=r"corpus.jsonl, line 2: malformed JSON"):
        read_corpus(p)
    p.write_text('{"_id": "1", "text": "ok"}\n{"title": "no id", "text": "x"}\n')
    with pytest.raises(DataFormatError, match=r"line 2: missing document id field '_id'"):
        read_corpus(p)


def test_duplicate_ids_in_corpus_file(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(DataFormatError, match=r"c.jsonl: duplicate document id '1'"):
        read_corpus(p)


def test_qrels_wrong_columns(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("1 0 d1 1\n1 d2\n")
    with pytest.raises(DataFormatError, match=r"q.txt, line 2: expected 4 columns"):
        read_qrels(p)
    p.write_text("1 0 d1 yes\n")
    with pytest.raises(DataFormatError, match=r"line 1: relevance grade 'yes'"):
        read_qrels(p)


def test_missing_files_are_clear(tmp_path):
    with pytest.raises(MissingResourceError, match="corpus not found"):
        read_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(MissingResourceError, match="no corpus.jsonl in folder"):
        read_corpus(tmp_path)


def test_tsv_corpus_and_mapping(tmp_path):
    p = tmp_path / "docs.tsv"
    p.write_text("id\ttext\nd1\tfirst doc\nd2\tsecond\tdoc with tab\n")
    c = read_corpus(p)
    assert c.ids == ["d1", "d2"] and c["d2"] == "second\tdoc with tab"


def test_msmarco_triples():
    triples = read_triples(shared("msmarco", "triples.sample.tsv"))
    assert len(triples) == 100
    assert triples[0].query == "is a little caffeine ok during pregnancy"


def test_triples_bad_line(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("q\tpos\tneg\nq\tonly two\n")
    with pytest.raises(DataFormatError, match=r"t.tsv, line 2: expected 3 tab-separated columns"):
        read_triples(p)


def test_dataset_repr_and_public_loaders():
    assert rk.datasets.load_beir is load_beir


#: one latin-1 byte (é = 0xe9) on line 3 of each format, at column 6 of that line
LATIN1 = {
    "corpus.tsv": (read_corpus, "d1\tone\nd2\ttwo\nd3\tcaf\u00e9\n"),
    "corpus.jsonl": (read_corpus, '{"_id": "1", "text": "a"}\n{"_id": "2", "text": "b"}\n'
                                  '{"_id":"\u00e9", "text": "c"}\n'),
    "docs.trec": (read_corpus, "<DOC>\n<DOCNO> d1 </DOCNO>\ncaf\u00e9 au lait\n</DOC>\n"),
    "topics.txt": (read_queries, "1\tone\n2\ttwo\n3\tcaf\u00e9\n"),
    "queries.jsonl": (read_queries, '{"_id": "1", "text": "a"}\n{"_id": "2", "text": "b"}\n'
                                    '{"_id":"\u00e9", "text": "c"}\n'),
    "qrels.txt": (read_qrels, "1 0 d1 1\n2 0 d2 1\n3 0 d\u00e9 1\n"),
    "run.trec": (rk.Run.read_trec, "1 Q0 d1 1 2.0 x\n2 Q0 d2 1 1.0 x\n3 Q0 d\u00e9 1 1.0 x\n"),
}


@pytest.mark.parametrize("name", list(LATIN1))
def test_latin1_files_name_file_line_and_byte(tmp_path, name):
    reader, text = LATIN1[name]
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataFormatError) as exc:
        reader(path)
    assert exc.value.path == str(path) and exc.value.line == 3
    assert "not UTF-8 (byte 0xe9 at column" in str(exc.value)
    assert "\n" not in str(exc.value)
