"""``Generator``: the last stage of a RAG pipeline, and the transformers backend.

    pipe = rk.BM25.build(ds.corpus) % 100 >> rk.Generator("smollm2", corpus=ds.corpus, k=3)
    result = pipe(ds.queries)          # result.answers[qid].text / .citations

Two modes over the same prompts: ``"answer"`` generates free text whose ``[n]``
citations are mapped back to docids; ``"classify"`` scores a fixed label set by
the model's likelihood (no output parsing, so no parsing failures).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from ..pipeline import Stage
from ..types import Answer, Corpus, Queries, Result, Run
from .backends import Backend, Generation, Messages, make_backend
from .context import build_prompts
from .prompts import load_prompt, map_citations

log = logging.getLogger("rankkit")

MODES = ("answer", "classify")


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
    passages, answers without citations and failures.
    """

    name = "generator"

    def __init__(self, model: Any = "smollm2", prompt: Any = None, max_new_tokens: int = 128,
                 k: int = 3, batch_size: int = 8, mode: str = "answer",
                 labels: Sequence[str] | Mapping[str, str] | None = None,
                 backend: str | Backend = "transformers", corpus: Any = None,
                 max_input_tokens: int | None = None, max_passage_tokens: int | None = None,
                 calibrate: bool = False, show_progress: bool = True,
                 generate_kwargs: dict[str, Any] | None = None, **backend_options: Any):
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
        self.corpus = _text_source(corpus)
        try:
            self.backend = make_backend(backend, model, **backend_options)
        except TypeError as e:
            raise ConfigError(f"bad option for the {backend!r} generator backend: {e}") from None
        self.stats: dict[str, Any] = {}

    # ----------------------------------------------------------------- the stage
    def transform(self, queries: Queries, run: Run | None) -> Result:
        qids = list(queries)
        base = (run if run is not None else Run(name="no-retrieval")).with_queries(qids)
        contexts = [[str(d) for d in base.docids(q)[: self.k].tolist()] for q in qids]
        if self.corpus is None and any(contexts):
            raise ConfigError("the Generator needs corpus= (a Corpus, a {docid: text} mapping or a "
                              "function) to read the passages of the incoming run")
        with_titles = "{title}" in self.template.passage
        passages = [[self._passage(d, with_titles)[0] for d in ctx] for ctx in contexts]
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
        reserve = self.max_new_tokens if self.mode == "answer" else \
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
        if self.mode == "answer":
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


def _text_source(corpus: Any) -> Corpus | Callable[[str], str] | None:
    if corpus is None or isinstance(corpus, Corpus):
        return corpus
    if isinstance(corpus, Mapping) or hasattr(corpus, "column_names"):
        return Corpus.coerce(corpus)
    if callable(corpus):
        return corpus
    raise ConfigError(f"corpus= takes a Corpus, a mapping or a function, not {type(corpus).__name__}")


# ------------------------------------------------------------------------ backend
class TransformersBackend(Backend):
    """Local HF causal LM (GGUF or safetensors): batched ``generate`` and label log-likelihoods.

    ``model`` is a name for :func:`rankkit.models.load_causal_lm` (loaded on first
    use, shared through its cache) or an already-loaded model, with ``tokenizer``.
    """

    name = "transformers"

    def __init__(self, model: Any = "smollm2", tokenizer: Any = None, dtype: Any = "auto",
                 device: str | None = None):
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            from ..models import _dtype_name, resolve_model

            resolve_model(model)  # a missing model fails here, before any heavy import
            self.model_name, self._dtype, self._device = str(model), _dtype_name(dtype), device
            self._model = self._tok = None
        else:
            if tokenizer is None:
                raise ConfigError("pass tokenizer= together with a loaded model")
            from ..models import prepare_tokenizer

            self._model, self._tok = model, prepare_tokenizer(tokenizer, model)
            self.model_name = getattr(model.config, "name_or_path", type(model).__name__)

    def load(self) -> None:
        self._load()

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from ..models import load_causal_lm

            self._model, self._tok = load_causal_lm(self.model_name, self._dtype, self._device)
        return self._model, self._tok

    @property
    def model(self) -> Any:
        return self._load()[0]

    @property
    def tokenizer(self) -> Any:
        return self._load()[1]

    # -------------------------------------------------------------- text side
    def render(self, messages: Messages) -> str:
        from ..models import chat_prompt

        return chat_prompt(self.tokenizer, messages)

    def _special(self) -> bool:
        # a chat template already writes the special tokens; plain prompts need them added
        return not getattr(self.tokenizer, "chat_template", None)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def truncate(self, text: str, n_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:max(0, n_tokens)]
        return self.tokenizer.decode(ids)

    def context_window(self) -> int | None:
        cfg = self.model.config
        window = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
            window = min(window, tok_max) if window else tok_max
        return window

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        if not prompts:
            return []
        return self.tokenizer(list(prompts), add_special_tokens=self._special())["input_ids"]

    def _batches(self, ids: list[list[int]], batch_size: int, progress: bool, desc: str):
        """Length-sorted batches (longest first) as ``(rows, input_ids, attention_mask)``."""
        import torch
        from tqdm.auto import tqdm

        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        pad = self.tokenizer.pad_token_id
        for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress,
                          unit="batch", leave=False):
            rows = order[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):  # left padding
                n = len(ids[i])
                input_ids[r, width - n:] = torch.tensor(ids[i], dtype=torch.long)
                mask[r, width - n:] = 1
            device = self.model.device
            yield rows, input_ids.to(device), mask.to(device)

    # -------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], messages: Sequence[Messages], max_new_tokens: int,
                 batch_size: int, progress: bool = False, **kwargs: Any) -> list[Generation]:
        import torch

        model, tok = self._load()
        ids = self.encode(prompts)
        out: list[Generation | None] = [None] * len(ids)
        settings = {"do_sample": False, "max_new_tokens": max_new_tokens,
                    "pad_token_id": tok.pad_token_id, **kwargs}
        if not settings["do_sample"]:
            # greedy: silence sampling defaults a generation config may carry
            settings.update(temperature=None, top_p=None, top_k=None)
        stop = eos_ids(model, tok)
        with torch.inference_mode():
            for rows, input_ids, mask in self._batches(ids, batch_size, progress, "generate"):
                gen = model.generate(input_ids=input_ids, attention_mask=mask, **settings)
                new = gen[:, input_ids.shape[1]:].cpu()
                lengths = generated_lengths(new, stop)
                texts = tok.batch_decode([row[:n] for row, n in zip(new, lengths)],
                                         skip_special_tokens=True)
                for i, text, n in zip(rows, texts, lengths):
                    out[i] = Generation(text=text, n_tokens=int(n))
        return [g for g in out if g is not None]

    # ---------------------------------------------------------- label scoring
    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], batch_size: int,
                     progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
        """Sum of label-token log-probs: one forward pass over the prompts of a batch,
        then one short pass over every label continuation reusing their KV cache."""
        import torch

        model, tok = self._load()
        label_ids = [tok(lab, add_special_tokens=False)["input_ids"] for lab in labels]
        for lab, li in zip(labels, label_ids):
            if not li:
                raise ConfigError(f"label {lab!r} encodes to no tokens")
        n_lab, longest = len(labels), max(len(li) for li in label_ids)
        first = torch.tensor([li[0] for li in label_ids])
        pad = tok.pad_token_id
        # continuation inputs (label[:-1]) and targets (label[1:]), right-padded: [L, M]
        m = longest - 1
        cont_in = torch.full((n_lab, max(m, 1)), pad, dtype=torch.long)
        cont_tgt = torch.zeros((n_lab, max(m, 1)), dtype=torch.long)
        cont_mask = torch.zeros((n_lab, max(m, 1)), dtype=torch.long)
        for j, li in enumerate(label_ids):
            k = len(li) - 1
            if k:
                cont_in[j, :k] = torch.tensor(li[:-1])
                cont_tgt[j, :k] = torch.tensor(li[1:])
                cont_mask[j, :k] = 1
        ids = self.encode(prompts)
        scores = np.full((len(ids), n_lab), np.nan)
        keep = _logits_to_keep_arg(model)
        with torch.inference_mode():
            for rows, input_ids, mask in self._batches(ids, batch_size, progress, "classify"):
                b = len(rows)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                            use_cache=m > 0, **({keep: 1} if keep else {}))
                last = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                total = last[:, first.to(last.device)]                       # [B, L]
                if m > 0:
                    cache = out.past_key_values
                    cache.batch_repeat_interleave(n_lab)                     # rows b*L + j
                    dev = input_ids.device
                    attn = torch.cat([mask.repeat_interleave(n_lab, 0),
                                      cont_mask.to(dev).repeat(b, 1)], dim=1)
                    start = mask.sum(-1).repeat_interleave(n_lab)[:, None]
                    cpos = start + torch.arange(cont_in.shape[1], device=dev)[None, :]
                    out2 = model(input_ids=cont_in.to(dev).repeat(b, 1), attention_mask=attn,
                                 position_ids=cpos, past_key_values=cache, use_cache=False)
                    logp = torch.log_softmax(out2.logits.float(), dim=-1)
                    tgt = cont_tgt.to(dev).repeat(b, 1)
                    picked = logp.gather(-1, tgt[..., None]).squeeze(-1) * cont_mask.to(dev).repeat(b, 1)
                    total = total + picked.sum(-1).view(b, n_lab)
                scores[rows] = total.cpu().numpy()
        return scores, [None] * len(ids)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name}


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a generation (the generation config's eos, else the tokenizer's)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def generated_lengths(new_tokens: Any, stop: set[int]) -> list[int]:
    """Tokens generated per row: up to and including the first stop token (padding excluded)."""
    out = []
    for row in new_tokens.tolist():
        n = len(row)
        for j, t in enumerate(row):
            if t in stop:
                n = j + 1
                break
        out.append(n)
    return out


def _logits_to_keep_arg(model: Any) -> str | None:
    params = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return name
    return None
