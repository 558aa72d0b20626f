"""Generator SFT data: retrieved-context examples (claim verification, cited answers) and their prompts.

An example is a claim, the passages a retriever put in front of it, and the
completion the generator should write: the verdict label (``verify``, the
prompt :class:`~rankkit.Generator` builds in ``mode="classify"``) or a short
answer citing the evidence passage ``[n]`` (``answer``, the ``mode="answer"``
prompt). Prompts are rendered exactly as the Generator renders them at
inference, so the trained adapter sees the same text. A prompt longer than the
model's window has its passages cut (water-filling, as at inference) and is
counted; one that does not fit even without passages is dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DataFormatError
from ..io import PathLike

TASKS = ("verify", "answer")
VERDICT_WORDS = {"SUPPORT": "supports", "CONTRADICT": "contradicts"}
NO_INFO = "The passages do not give enough information to verify the claim."


@dataclass
class GeneratorExample:
    """One SFT example: a task, the claim, its retrieved passages (docids + texts), the target completion."""

    qid: str
    task: str
    query: str
    docids: list[str]
    passages: list[str]
    completion: str


def load_claims(path: PathLike, split: str | None = "train") -> dict[str, tuple[str, dict[str, str]]]:
    """``qid -> (verdict, {evidence docid: label})`` from a SciFact-style claims JSONL."""
    from ..datasets.formats import iter_jsonl

    out: dict[str, tuple[str, dict[str, str]]] = {}
    for lineno, row in iter_jsonl(path, "claims file"):
        qid, verdict = row.get("query-id", row.get("qid")), row.get("verdict")
        if qid is None or not isinstance(verdict, str):
            raise DataFormatError("each line needs 'query-id' and a 'verdict' string", path, lineno)
        if split is None or row.get("split") in (None, split):
            out[str(qid)] = (verdict, {str(d): str(v) for d, v in (row.get("evidence") or {}).items()})
    return out


def answer_completion(query: str, verdict: str, evidence: dict[str, str], docids: Sequence[str],
                      passages: Sequence[str]) -> str:
    """A cited answer: the verdict, the evidence passage(s) ``[n]`` and the evidence sentence closest to the claim.

    Evidence that the retriever missed cannot be cited: the answer then says
    the passages are not enough, which is what the model can know from them.
    """
    from ..generators.compress import score_sentences, split_sentences

    cited = [i for i, d in enumerate(docids, 1) if d in evidence]
    if verdict not in VERDICT_WORDS or not cited:
        return NO_INFO
    sents = split_sentences(passages[cited[0] - 1])
    best = sents[int(score_sentences(query, sents, query_weight=1.0).argmax())] if sents else ""
    refs = "".join(f"[{i}]" for i in cited)
    return f"The evidence {VERDICT_WORDS[verdict]} the claim {refs}." + (f" {best} [{cited[0]}]" if best else "")


def build_examples(queries: Any, run: Any, corpus: Any, claims: dict[str, tuple[str, dict[str, str]]],
                   k: int = 3, tasks: Sequence[str] = TASKS,
                   texts: dict[str, dict[str, str]] | None = None) -> tuple[list[GeneratorExample], dict[str, Any]]:
    """Examples for every claim of ``claims`` in ``queries``, passages = the run's top ``k``.

    ``texts`` (``{qid: {docid: text}}``, e.g. a Compressor's ``run.extras["compressed"]``)
    replaces the corpus text of those passages, so the generator trains on the
    context it will be given at inference.
    """
    bad = sorted(set(tasks) - set(TASKS))
    if bad or not tasks:
        raise ConfigError(f"unknown generator task(s) {bad or tasks!r} (choose from {', '.join(TASKS)})")
    out: list[GeneratorExample] = []
    missing = 0
    for qid in sorted(claims):
        if qid not in queries:
            missing += 1
            continue
        verdict, evidence = claims[qid]
        docids = [str(d) for d in run.docids(qid)[:k].tolist()] if qid in run else []
        own = (texts or {}).get(qid, {})
        passages = [own[d] if d in own else corpus[d] for d in docids]
        for task in tasks:
            target = verdict if task == "verify" else \
                answer_completion(queries[qid], verdict, evidence, docids, passages)
            out.append(GeneratorExample(qid, task, queries[qid], docids, passages, target))
    if not out:
        raise ConfigError("no generator training examples: none of the claims is among the queries")
    counts = {"claims": len(claims) - missing, "claims_without_query": missing, "examples": len(out),
              "tasks": dict(Counter(e.task for e in out)),
              "verdicts": dict(Counter(e.completion for e in out if e.task == "verify")),
              "evidence_retrieved": sum(1 for e in out if e.task == "answer" and e.completion != NO_INFO)}
    return out, counts


def balance_verdicts(examples: Sequence[GeneratorExample], seed: int = 0) -> tuple[list[GeneratorExample], dict[str, int]]:
    """Oversample ``verify`` examples so every verdict is as frequent as the most frequent one.

    SciFact train has about half as many CONTRADICT claims as SUPPORT ones, and a
    small generator trained on the raw mix learns never to say CONTRADICT
    (macro-F1 pays for it). Minority examples are repeated (whole copies first,
    then a seeded sample without replacement for the rest); ``answer`` examples
    and every original are kept. Returns the examples and the copies added per verdict.
    """
    import random

    by_verdict: dict[str, list[GeneratorExample]] = {}
    for e in examples:
        if e.task == "verify":
            by_verdict.setdefault(e.completion, []).append(e)
    if not by_verdict:
        return list(examples), {}
    top = max(len(v) for v in by_verdict.values())
    rng = random.Random(seed)
    out, added = list(examples), {}
    for verdict in sorted(by_verdict):
        group = by_verdict[verdict]
        need = top - len(group)
        extra = group * (need // len(group)) + rng.sample(group, need % len(group))
        out.extend(extra)
        added[verdict] = len(extra)
    rng.shuffle(out)
    return out, added


def sft_rows(examples: Sequence[GeneratorExample], model: Any, tokenizer: Any, max_length: int,
             labels: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``{"prompt", "completion"}`` columns for trl, prompts as the Generator renders them, fitted to ``max_length``."""
    from ..generators.context import build_prompts
    from ..generators.prompts import PROMPTS
    from ..llm.transformers_backend import TransformersBackend

    backend = TransformersBackend(model, tokenizer=tokenizer)
    rows: dict[str, list[str]] = {"prompt": [], "completion": []}
    stats = {"truncated_passages": 0, "truncated_examples": 0, "dropped": 0}
    for task in TASKS:
        group = [e for e in examples if e.task == task]
        if not group:
            continue
        template = PROMPTS["verify" if task == "verify" else "answer"]
        room = max(backend.count_tokens([e.completion for e in group])) + 2      # + end-of-turn tokens
        if room >= max_length:
            raise ConfigError(f"max_length {max_length} leaves no room for a prompt before the {task} completions")
        built = build_prompts(template, backend, [e.query for e in group], [e.passages for e in group], None,
                              max_length - room, labels if task == "verify" else ())
        for e, prompt, cut, err in zip(group, built.prompts, built.truncated, built.errors):
            if err is not None:
                stats["dropped"] += 1
                continue
            stats["truncated_passages"] += cut
            stats["truncated_examples"] += bool(cut)
            rows["prompt"].append(prompt)
            rows["completion"].append(e.completion)
    if not rows["prompt"]:
        raise ConfigError(f"every generator example was longer than max_length {max_length}")
    return rows, stats


__all__ = ["GeneratorExample", "TASKS", "load_claims", "answer_completion", "build_examples", "sft_rows"]
