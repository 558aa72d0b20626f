"""``Generator``: the last stage of a RAG pipeline.

    pipe = rk.BM25.build(ds.corpus) % 100 >> rk.Generator("smollm2", corpus=ds.corpus, k=3)
    result = pipe(ds.queries)          # result.answers[qid].text / .citations

Three modes over the same passages: ``"answer"`` generates free text whose ``[n]``
citations are mapped back to docids; ``"summarize"`` generates a cited summary of
the (possibly compressed, :class:`~rankkit.generators.compress.Compressor`) context;
``"classify"`` scores a fixed label set by the model's likelihood (no output
parsing, so no parsing failures). The LLM itself runs in a :mod:`rankkit.llm`
backend. ``model`` may be an adapter folder from ``rankkit train generator``
(its manifest names the base model; the LoRA is merged into a copy of it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from ..llm.backends import Backend, Messages, make_backend
from ..llm.transformers_backend import TransformersBackend
from ..pipeline import Stage
from ..types import Answer, Corpus, Queries, Result, Run
from .context import build_prompts
from .prompts import load_prompt, map_citations

log = logging.getLogger("rankkit")

MODES = ("answer", "classify", "summarize")
#: manifest kind of an adapter folder written by ``rankkit train generator``
KIND_GENERATOR = "generator-adapter"


class Generator(Stage):
    """Answers (or labels) every query from the top ``k`` passages of the incoming run.

    ``labels`` (classification) is a list of labels, or a mapping label -> the
    text whose likelihood is scored for it (a verbaliser). Backend options
    (``dtype``, ``device`` for transformers; ``base_url``, ``max_retries`` for
    ``openai``; engine options for ``vllm``) pass through ``**backend_options``.
    ``calibrate=True`` subtracts each label's score on a content-free prompt
    (claim "N/A", no passages) before choosing, which removes a small model's
    bias towards one label (contextual calibration, Zhao et al., 2021).
    ``max_passage_tokens`` caps every passage (counted as truncated) before the
    whole prompt is fitted into ``max_input_tokens`` (default: the model's window).
    After a call, :attr:`stats` counts truncated passages, queries without
    passages, answers without citations and failures. An incoming run from a
    :class:`~rankkit.generators.compress.Compressor` brings its compressed
    passage texts, which are used instead of the corpus. ``adapter=`` (or
    ``model=`` itself) names a folder from ``rankkit train generator``; it must
    have been trained on ``model`` (transformers backend only).
    """

    name = "generator"

    def __init__(self, model: Any = "smollm2", prompt: Any = None, max_new_tokens: int = 128,
                 k: int = 3, batch_size: int = 8, mode: str = "answer",
                 labels: Sequence[str] | Mapping[str, str] | None = None,
                 backend: str | Backend = "transformers", corpus: Any = None,
                 max_input_tokens: int | None = None, max_passage_tokens: int | None = None,
                 calibrate: bool = False, show_progress: bool = True,
                 generate_kwargs: dict[str, Any] | None = None, adapter: str | os.PathLike | None = None,
                 **backend_options: Any):
        if mode not in MODES:
            raise ConfigError(f"unknown generator mode {mode!r} (choose {', '.join(MODES)})")
        for what, value, low in (("k", k, 0), ("max_new_tokens", max_new_tokens, 1),
                                 ("batch_size", batch_size, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ConfigError(f"Generator {what} must be an integer >= {low}, got {value!r}")
        self.mode = mode
        self.labels, self.label_texts = _check_labels(labels, mode)
        self.template = load_prompt(prompt, mode)
        self.max_new_tokens, self.k, self.batch_size = int(max_new_tokens), int(k), int(batch_size)
        self.max_input_tokens, self.max_passage_tokens = max_input_tokens, max_passage_tokens
        if calibrate and mode != "classify":
            raise ConfigError("calibrate=True is for mode='classify'")
        self.calibrate = calibrate
        self._prior: dict[str, float] | None = None
        self._generated_tokens = 0
        self.show_progress = show_progress
        self.generate_kwargs = dict(generate_kwargs or {})
        self.corpus = text_source(corpus)
        folder, base = adapter_folder(model, adapter)
        if folder is not None and backend != "transformers":
            raise ConfigError(f"a trained generator adapter runs on the transformers backend, not {backend!r}")
        try:
            self.backend = AdapterBackend(folder, base, **backend_options) if folder is not None else \
                make_backend(backend, model, **backend_options)
        except TypeError as e:
            raise ConfigError(f"bad option for the {backend!r} generator backend: {e}") from None
        self.stats: dict[str, Any] = {}

    # ----------------------------------------------------------------- the stage
    def transform(self, queries: Queries, run: Run | None) -> Result:
        qids = list(queries)
        compressed = (run.extras.get("compressed") or {}) if run is not None else {}
        base = (run if run is not None else Run(name="no-retrieval")).with_queries(qids)
        contexts = [[str(d) for d in base.docids(q)[: self.k].tolist()] for q in qids]
        if self.corpus is None and not compressed and any(contexts):
            raise ConfigError("the Generator needs corpus= (a Corpus, a {docid: text} mapping or a "
                              "function) to read the passages of the incoming run")
        with_titles = "{title}" in self.template.passage and not compressed
        passages = [[compressed[q][d] if d in compressed.get(q, {}) else self._passage(d, with_titles)[0]
                     for d in ctx] for q, ctx in zip(qids, contexts)]
        capped = self._cap_passages(passages)
        titles = [[self._passage(d, with_titles)[1] for d in ctx] for ctx in contexts] \
            if with_titles else None
        built = build_prompts(self.template, self.backend, [queries[q] for q in qids], passages,
                              titles, self._budget(), self.label_texts)
        answers = {qid: Answer(qid=qid, text="", context=contexts[i], prompt=built.prompts[i],
                               error=built.errors[i]) for i, qid in enumerate(qids)}
        ok = [i for i, e in enumerate(built.errors) if e is None]
        todo = [answers[qids[i]] for i in ok]
        if self.mode == "classify":
            self._classify(todo, [built.prompts[i] for i in ok])
        else:
            self._generate(todo, [built.prompts[i] for i in ok], [built.messages[i] for i in ok])
        self._record_stats(answers, contexts, [a + b for a, b in zip(built.truncated, capped)])
        return Result(run=base, answers=answers)

    def _classify(self, answers: list[Answer], prompts: list[str]) -> None:
        scores, errors = self.backend.score_labels(prompts, self.label_texts, self.batch_size,
                                                   progress=self.show_progress)
        if self.calibrate and len(prompts):
            prior = self.label_prior()
            scores = scores - prior[None, :]
            self._prior = {lab: float(v) for lab, v in zip(self.labels, prior)}
        for a, row, err in zip(answers, scores, errors):
            if err is not None or not np.all(np.isfinite(row)):
                a.error = err or "the backend returned no label scores"
                continue
            a.label = a.text = self.labels[int(np.argmax(row))]
            a.label_scores = {lab: float(v) for lab, v in zip(self.labels, row)}

    def _generate(self, answers: list[Answer], prompts: list[str], messages: list[Messages]) -> None:
        gens = self.backend.generate(prompts, messages, self.max_new_tokens, self.batch_size,
                                     progress=self.show_progress, **self.generate_kwargs)
        self._generated_tokens = sum(g.n_tokens for g in gens)
        for a, g in zip(answers, gens):
            a.text, a.error = g.text.strip(), g.error
            a.citations = map_citations(a.text, a.context)

    def load(self) -> Generator:
        """Load the model now instead of at the first call (e.g. to time inference alone)."""
        self.backend.load()
        return self

    def label_prior(self) -> np.ndarray:
        """Label scores on a content-free prompt (claim "N/A", no passages): the model's bias."""
        prompt = self.backend.render(self.template.messages("N/A", [], labels=self.label_texts))
        scores, errors = self.backend.score_labels([prompt], self.label_texts, 1)
        if errors[0] is not None or not np.all(np.isfinite(scores[0])):
            raise RankkitError(f"could not score the content-free prompt for calibration: {errors[0]}")
        return scores[0]

    # ------------------------------------------------------------------- helpers
    def _cap_passages(self, passages: list[list[str]]) -> list[int]:
        """Cut every passage to ``max_passage_tokens`` in place; how many were cut per query."""
        cap = self.max_passage_tokens
        if cap is None:
            return [0] * len(passages)
        counts = []
        for texts in passages:
            lengths = self.backend.count_tokens(texts)
            counts.append(sum(1 for n in lengths if n > cap))
            texts[:] = [self.backend.truncate(t, cap) if n > cap else t for t, n in zip(texts, lengths)]
        return counts

    def _passage(self, docid: str, with_titles: bool) -> tuple[str, str]:
        src = self.corpus
        assert src is not None
        try:
            if isinstance(src, Corpus):
                return (src.body(docid), src.title(docid)) if with_titles else (src[docid], "")
            return str(src(docid)), ""
        except KeyError:
            raise RankkitError(f"document {docid!r} of the incoming run is not in the "
                               "Generator's corpus") from None

    def _budget(self) -> int | None:
        if self.max_input_tokens is not None:
            return int(self.max_input_tokens)
        window = self.backend.context_window()
        if window is None:
            return None
        reserve = self.max_new_tokens if self.mode != "classify" else \
            max(self.backend.count_tokens(self.label_texts))
        return max(1, window - reserve)

    def _record_stats(self, answers: dict[str, Answer], contexts: list[list[str]],
                      truncated: list[int]) -> None:
        self.stats = {
            "queries": len(answers),
            "no_passages": sum(1 for c in contexts if not c),
            "truncated_passages": int(sum(truncated)),
            "truncated_queries": sum(1 for t in truncated if t),
            "errors": sum(1 for a in answers.values() if a.error),
        }
        if self.calibrate and self._prior:
            self.stats["label_prior"] = self._prior
        if self.mode != "classify":
            self.stats["uncited"] = sum(1 for a in answers.values() if not a.error and not a.citations)
            self.stats["generated_tokens"] = self._generated_tokens
        if self.stats["truncated_passages"]:
            log.warning("generator: %d passages of %d queries were truncated (max_passage_tokens "
                        "or the context budget)", self.stats["truncated_passages"],
                        self.stats["truncated_queries"])
        if self.stats["errors"]:
            log.warning("generator: %d of %d queries failed (see Answer.error)",
                        self.stats["errors"], len(answers))

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {**self.backend.describe(), "mode": self.mode, "k": self.k,
                             "prompt": self.template.name}
        if self.mode == "classify":
            p["labels"] = list(self.labels)
            if self.calibrate:
                p["calibrate"] = True
        else:
            p["max_new_tokens"] = self.max_new_tokens
        return p


def _check_labels(labels: Any, mode: str) -> tuple[list[str], list[str]]:
    if mode != "classify":
        if labels:
            raise ConfigError("labels= is for mode='classify'; free-text answers take no labels")
        return [], []
    if not labels:
        raise ConfigError("mode='classify' needs labels=[...] (e.g. SUPPORT, CONTRADICT, "
                          "NOT_ENOUGH_INFO)")
    if isinstance(labels, str):
        raise ConfigError(f"labels must be a list or a mapping, not the string {labels!r}")
    pairs = list(labels.items()) if isinstance(labels, Mapping) else [(lab, lab) for lab in labels]
    names = [str(a) for a, _ in pairs]
    texts = [str(b) for _, b in pairs]
    if any(not t.strip() for t in names + texts):
        raise ConfigError(f"labels must be non-empty strings, got {labels!r}")
    for what, values in (("label", names), ("label text", texts)):
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            raise ConfigError(f"duplicate {what}(s) {sorted(dup)} in classification labels")
    return names, texts


def text_source(corpus: Any) -> Corpus | Callable[[str], str] | None:
    if corpus is None or isinstance(corpus, Corpus):
        return corpus
    if isinstance(corpus, Mapping) or hasattr(corpus, "column_names"):
        return Corpus.coerce(corpus)
    if callable(corpus):
        return corpus
    raise ConfigError(f"corpus= takes a Corpus, a mapping or a function, not {type(corpus).__name__}")


# ------------------------------------------------------------ trained adapters
def adapter_folder(model: Any, adapter: str | os.PathLike | None) -> tuple[str | None, str | None]:
    """(adapter folder, base model) when ``model`` or ``adapter`` is a generator adapter folder.

    An adapter given together with a model it was not trained on is an error.
    """
    from pathlib import Path

    from ..folders import read_manifest, require_manifest

    if adapter is not None:
        man = require_manifest(adapter, KIND_GENERATOR, what="generator adapter")
        base = str(man["base_model"])
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise ConfigError("adapter= goes with a model name or folder, not a loaded model")
        if model is not None and not _same_model(model, base):
            raise ConfigError(f"adapter {os.fspath(adapter)!r} was trained on base model {base!r}, "
                              f"not {os.fspath(model)!r}")
        return os.fspath(adapter), base
    if isinstance(model, (str, os.PathLike)) and Path(os.fspath(model)).is_dir():
        man = read_manifest(model)
        if man is not None and man.get("kind") == KIND_GENERATOR:
            return os.fspath(model), str(man["base_model"])
    return None, None


def _same_model(a: Any, b: str) -> bool:
    from pathlib import Path

    if str(os.fspath(a)) == b:
        return True
    pa, pb = Path(os.fspath(a)), Path(b)
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def load_adapter_model(folder: str | os.PathLike, dtype: Any = "auto", device: str | None = None
                       ) -> tuple[Any, Any, dict[str, Any]]:
    """(model with the LoRA merged in, tokenizer, manifest) for a generator adapter folder.

    The adapter is merged into a deep copy of the cached base (a GGUF reload
    takes minutes); a base whose weights differ from the ones trained on (its
    fingerprint in the manifest) is refused.
    """
    import copy

    import peft

    from ..folders import model_fingerprint, require_manifest
    from ..llm.loading import load_causal_lm

    man = require_manifest(folder, KIND_GENERATOR, what="generator adapter")
    shared, tok = load_causal_lm(man["base_model"], dtype, device)
    want = man.get("base_fingerprint")
    if want and dtype in ("auto", None) and model_fingerprint(shared) != want:
        raise ConfigError(f"adapter {os.fspath(folder)!r} was trained on other weights than the current "
                          f"{man['base_model']!r} (base fingerprint differs)")
    base = copy.deepcopy(shared)
    try:
        net = peft.PeftModel.from_pretrained(base, os.fspath(folder)).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(f"adapter {os.fspath(folder)!r} does not fit base model {man['base_model']!r}: "
                          f"{str(e).splitlines()[0]}") from None
    net.eval()
    return net, tok, man


class AdapterBackend(TransformersBackend):
    """The transformers backend over a base model with a trained generator adapter merged in (lazy)."""

    def __init__(self, folder: str, base: str, dtype: Any = "auto", device: str | None = None):
        super().__init__(base, dtype=dtype, device=device)
        self.adapter = folder

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            self._model, self._tok, _ = load_adapter_model(self.adapter, self._dtype, self._device)
        return self._model, self._tok

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "adapter": self.adapter}
