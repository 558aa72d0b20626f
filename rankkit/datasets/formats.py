"""Readers for the standard IR file formats, with errors that name file and line.

Corpus: BEIR JSONL, TREC SGML (``<DOC><DOCNO>``), TSV (``docid<TAB>text``).
Queries: BEIR JSONL, TREC topics (``<top><num><title>``), TSV (``qid<TAB>text``).
Qrels: TREC (``qid 0|Q0 docid grade``) and BEIR TSV (header ``query-id corpus-id score``).
All accept gzipped files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataFormatError, MissingResourceError
from ..io import PathLike, open_text, require_file
from ..types import Corpus, Qrels, Queries


def _first_content_line(path: PathLike) -> str:
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                return line.strip()
    return ""


def iter_jsonl(path: PathLike, what: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; malformed lines name file and line."""
    with open_text(path, what) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"malformed JSON ({e.msg})", path, lineno) from None
            if not isinstance(obj, dict):
                raise DataFormatError("expected a JSON object per line", path, lineno)
            yield lineno, obj


# ----------------------------------------------------------------------- corpus
def read_corpus_jsonl(path: PathLike, id_field: str = "_id") -> Corpus:
    ids, texts, titles = [], [], []
    for lineno, obj in iter_jsonl(path, "corpus file"):
        docid = obj.get(id_field, obj.get("id", obj.get("docid")))
        if docid is None:
            raise DataFormatError(f"missing document id field {id_field!r}", path, lineno)
        if "text" not in obj and "contents" not in obj:
            raise DataFormatError("missing field 'text'", path, lineno)
        ids.append(str(docid))
        texts.append(str(obj.get("text", obj.get("contents")) or ""))
        titles.append(str(obj.get("title") or ""))
    return Corpus(ids, texts, titles, source=str(path))


_TAG = re.compile(r"<(/?)([A-Za-z]+)>")


def read_trec_docs(path: PathLike) -> Corpus:
    """TREC SGML: ``<DOC><DOCNO>id</DOCNO> ... text ... </DOC>``; TITLE/HEAD kept as title."""
    ids, texts, titles = [], [], []
    with open_text(path, "TREC document file") as fh:
        content = fh.read()
    pos, n = 0, 0
    line_of = _line_counter(content)
    while True:
        start = content.find("<DOC>", pos)
        if start < 0:
            break
        end = content.find("</DOC>", start)
        if end < 0:
            raise DataFormatError("<DOC> without closing </DOC>", path, line_of(start))
        block = content[start + 5 : end]
        m = re.search(r"<DOCNO>\s*(.*?)\s*</DOCNO>", block, re.S)
        if not m:
            raise DataFormatError("<DOC> without <DOCNO>", path, line_of(start))
        docid = m.group(1)
        rest = block[: m.start()] + block[m.end() :]
        title = ""
        tm = re.search(r"<(TITLE|HEAD|HEADLINE)>(.*?)</\1>", rest, re.S | re.I)
        if tm:
            title = " ".join(tm.group(2).split())
            rest = rest[: tm.start()] + rest[tm.end() :]
        text = " ".join(_TAG.sub(" ", rest).split())
        ids.append(docid)
        texts.append(text)
        titles.append(title)
        pos = end + 6
        n += 1
    if n == 0:
        raise DataFormatError("no <DOC> elements found", path)
    return Corpus(ids, texts, titles, source=str(path))


def _line_counter(content: str):
    def line_of(offset: int) -> int:
        return content.count("\n", 0, offset) + 1

    return line_of


def iter_tsv(path: PathLike, what: str, columns: int | None = None,
             expected: str = "") -> Iterator[tuple[int, list[str]]]:
    """``(line number, columns)`` of each non-blank tab-separated line of a (gzipped) text file.

    ``columns``: the exact number of columns every line must have (a DataFormatError
    naming file and line otherwise; ``expected`` describes them in the message).
    """
    with open_text(path, f"{what} file") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            cols = line.split("\t")
            if columns is not None and len(cols) != columns:
                raise DataFormatError(f"expected {columns} tab-separated columns{expected}, found {len(cols)}",
                                      path, lineno)
            yield lineno, cols


def read_tsv_pairs(path: PathLike, what: str) -> dict[str, str]:
    """``id<TAB>text`` lines (a header line ``id text`` / ``qid ...`` is skipped)."""
    out: dict[str, str] = {}
    for lineno, cols in iter_tsv(path, what):
        if len(cols) < 2:
            raise DataFormatError(f"expected 'id<TAB>text', found {len(cols)} column", path, lineno)
        if lineno == 1 and cols[0].lower() in ("id", "qid", "docid", "_id", "query-id", "pid"):
            continue
        if cols[0] in out:
            raise DataFormatError(f"duplicate {what} id {cols[0]!r}", path, lineno)
        out[cols[0]] = "\t".join(cols[1:])
    return out


def read_corpus(path: PathLike) -> Corpus:
    """A corpus from a BEIR folder, ``corpus.jsonl``, TREC SGML or ``docid<TAB>text`` TSV."""
    p = require_file(path, "corpus")
    if p.is_dir():
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (p / name).exists():
                return read_corpus_jsonl(p / name)
        raise MissingResourceError(f"no corpus.jsonl in folder {p}")
    first = _first_content_line(p)
    if first.startswith("{"):
        return read_corpus_jsonl(p)
    if first.upper().startswith("<DOC"):
        return read_trec_docs(p)
    pairs = read_tsv_pairs(p, "document")
    return Corpus(list(pairs), list(pairs.values()), source=str(p))


# ---------------------------------------------------------------------- queries
def read_queries_jsonl(path: PathLike) -> Queries:
    out: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path, "queries file"):
        qid = obj.get("_id", obj.get("id", obj.get("qid")))
        if qid is None:
            raise DataFormatError("missing query id field '_id'", path, lineno)
        text = obj.get("text", obj.get("query"))
        if text is None:
            raise DataFormatError("missing field 'text'", path, lineno)
        out[str(qid)] = str(text)
    return Queries(out)


def read_trec_topics(path: PathLike, field: str = "title") -> Queries:
    """TREC topics in SGML (``<top><num>..<title>..``) or ``qid<TAB>text``, gzipped or not."""
    first = _first_content_line(path)
    if not first.lower().startswith("<top"):
        return Queries(read_tsv_pairs(path, "query"))
    with open_text(path, "topics file") as fh:
        content = fh.read()
    line_of = _line_counter(content)
    out: dict[str, str] = {}
    for m in re.finditer(r"<top>(.*?)</top>", content, re.S | re.I):
        block = m.group(1)
        num = re.search(r"<num>\s*(?:Number:)?\s*([^<\s]+)", block, re.I)
        if not num:
            raise DataFormatError("<top> without <num>", path, line_of(m.start()))
        # the field runs to its closing tag, or to the next opening tag (old TREC style)
        fm = re.search(rf"<{field}>\s*(?:Topic:)?(.*?)(?:</{field}>|<[a-z]+>|$)", block, re.S | re.I)
        if not fm:
            raise DataFormatError(f"topic {num.group(1)} has no <{field}>", path, line_of(m.start()))
        out[num.group(1)] = " ".join(fm.group(1).split())
    if not out:
        raise DataFormatError("no <top> elements found", path)
    return Queries(out)


def read_queries(path: PathLike) -> Queries:
    """Queries from BEIR JSONL, TREC topics (SGML or TSV) or a BEIR folder."""
    p = require_file(path, "queries")
    if p.is_dir():
        return read_queries_jsonl(require_file(p / "queries.jsonl", "queries.jsonl"))
    if _first_content_line(p).startswith("{"):
        return read_queries_jsonl(p)
    return read_trec_topics(p)


# ------------------------------------------------------------------------ qrels
def read_qrels(path: PathLike) -> Qrels:
    """Qrels in TREC (4 columns) or BEIR TSV (3 columns, header) format."""
    out: dict[str, dict[str, int]] = {}
    with open_text(path, "qrels file") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            cols = line.split()
            if lineno == 1 and cols and cols[0].lower() in ("query-id", "qid", "query_id"):
                continue
            if len(cols) == 4:
                qid, docid, grade = cols[0], cols[2], cols[3]
            elif len(cols) == 3:
                qid, docid, grade = cols
            else:
                raise DataFormatError(
                    f"expected 4 columns (qid 0 docid grade) or 3 (query-id corpus-id score), found {len(cols)}",
                    path, lineno)
            try:
                g = int(float(grade))
            except ValueError:
                raise DataFormatError(f"relevance grade {grade!r} is not a number", path, lineno) from None
            out.setdefault(qid, {})[docid] = g
    return Qrels(out)


def write_qrels(qrels: Qrels, path: PathLike) -> None:
    from ..io import atomic_path

    with atomic_path(path) as fh:
        for qid, docs in qrels.items():
            fh.writelines(f"{qid} 0 {d} {g}\n" for d, g in docs.items())


def find_split_file(folder: Path, split: str) -> Path:
    qfolder = folder / "qrels"
    for cand in (qfolder / f"{split}.tsv", qfolder / f"{split}.tsv.gz"):
        if cand.exists():
            return cand
    have = sorted(p.name.split(".")[0] for p in qfolder.glob("*.tsv*")) if qfolder.exists() else []
    raise MissingResourceError(
        f"BEIR folder {folder} has no qrels for split {split!r}"
        + (f" (available: {', '.join(have)})" if have else " (no qrels/ folder)")
    )
