"""The FIRST training objective: language modelling on the target permutation + RankNet on the first identifier.

For each window (a :class:`~rankkit.training.first_data.FirstExample`) the
causal LM reads the FIRST prompt (the same text inference builds, answer
prefilled with ``[``) followed by the target answer ``B] > [A] > ...<eos>``.
The loss is ``rank_weight * RankNet + lm_weight * LM`` (the paper: 10 and 1):

- LM: cross-entropy on the answer tokens;
- RankNet: on the identifier logits at the first answer position (the very
  logits inference ranks by), every pair (i better than j by the target, and
  for qrels targets of a different grade) weighted ``1 / (r_i + r_j)`` with
  1-based target ranks, so mistakes near the top weigh most; averaged over
  the pairs, as in the reference implementation (gangiswag/llm-reranker).

Batches are left-padded (position ids from the mask), and logits are computed
only for the last ``max answer length + 1`` positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .objectives import Objective, register_objective


def weighted_ranknet(scores: Any, ranks: Any, tiers: Any = None) -> Any:
    """Pairwise logistic loss over ``scores`` [B, W], pairs weighted ``1/(r_i + r_j)``.

    ``ranks`` [B, W] are 1-based target ranks, 0 at padding. ``tiers`` [B, W]
    (optional): pairs in the same tier are ties and take no part (qrels targets:
    the grade, so the arbitrary order among equally judged passages is not
    taught). Averaged over the pairs that count, as the reference
    implementation's weighted ``BCEWithLogitsLoss`` does, so ``rank_weight``
    means what the paper's 10:1 means.
    """
    import torch

    valid = ranks > 0
    ri, rj = ranks[:, :, None].float(), ranks[:, None, :].float()
    better = (ri < rj) & valid[:, :, None] & valid[:, None, :]          # i ranked above j
    if tiers is not None:
        better &= tiers[:, :, None] != tiers[:, None, :]
    weight = torch.where(better, 1.0 / (ri + rj).clamp(min=1.0), torch.zeros_like(ri))
    diff = scores[:, None, :] - scores[:, :, None]                        # s_j - s_i at [b, i, j]
    pairs = better.sum()
    if pairs == 0:
        return scores.sum() * 0.0
    return (torch.nn.functional.softplus(diff) * weight).sum() / pairs


class FirstObjective(Objective):
    """Joint LM + weighted RankNet loss for a causal LM reranking windows (``objective: {name: first}``)."""

    task_type = "CAUSAL_LM"

    def __init__(self, window: int = 20, max_passage_tokens: int = 128, rank_weight: float = 10.0,
                 lm_weight: float = 1.0, template: str = "chat"):
        super().__init__()
        from ..rerankers.first_prompt import LETTERS

        if not 2 <= int(window) <= len(LETTERS):
            raise ConfigError(f"window must be in 2..{len(LETTERS)}, got {window}")
        if rank_weight < 0 or lm_weight < 0 or rank_weight + lm_weight <= 0:
            raise ConfigError("rank_weight and lm_weight must be >= 0, not both 0")
        if template not in ("chat", "plain"):
            raise ConfigError(f"template must be 'chat' or 'plain', got {template!r}")
        self.window, self.max_passage_tokens = int(window), int(max_passage_tokens)
        self.rank_weight, self.lm_weight, self.template = float(rank_weight), float(lm_weight), template
        self.options = {"window": self.window, "max_passage_tokens": self.max_passage_tokens,
                        "rank_weight": self.rank_weight, "lm_weight": self.lm_weight, "template": template}
        self.ids = LETTERS[:self.window]
        self.id_tokens: list[int] = []
        self.last_terms: dict[str, float] = {}
        self.passages_cut = 0       # passages cut to max_passage_tokens (``truncated``: cut to fit max_length)

    def check(self, examples: Sequence[Any]) -> None:
        from .first_data import FirstExample

        for i, ex in enumerate(examples):
            if not isinstance(ex, FirstExample):
                raise ConfigError(f"the 'first' objective trains on FirstExample windows (data source "
                                  f"'first'), example {i} is a {type(ex).__name__}")
            if not 2 <= len(ex.passages) <= self.window or sorted(ex.order) != list(range(len(ex.passages))):
                raise ConfigError(f"example {i}: {len(ex.passages)} passages (window {self.window}) with "
                                  f"order {ex.order[:8]}... that is not a permutation of them")

    def load_model(self, base_model: str) -> tuple[Any, Any, set[str]]:
        """A fresh (uncached) copy of the causal LM: training changes its weights."""
        from ..llm.loading import load_causal_lm

        model, tok = load_causal_lm(base_model, cache=False)
        return model, tok, set()

    def setup(self, tokenizer: Any, max_length: int, group_size: int | None = None) -> None:
        from ..rerankers.first import check_identifiers

        super().setup(tokenizer, max_length, group_size)
        if self.template == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the base model has no chat template; set objective option template: plain")
        self.id_tokens = check_identifiers(
            lambda texts: tokenizer(list(texts), add_special_tokens=False)["input_ids"], self.ids)

    # ------------------------------------------------------------------ batches
    def render(self, messages: list[dict[str, str]]) -> str:
        from ..llm.loading import chat_prompt, render_plain

        return render_plain(messages) if self.template == "plain" else chat_prompt(self.tokenizer, messages)

    def encode(self, ex: Any) -> tuple[list[int], list[int]]:
        """(prompt ids, answer ids) of one window; passages cut so the whole fits ``max_length``."""
        from ..rerankers.first_prompt import answer_text, render_window

        tok, n = self.tokenizer, len(ex.passages)
        ids = self.ids[:n]
        # special tokens exactly as the inference backend adds them: only without a chat template
        special = not getattr(tok, "chat_template", None)
        answer = tok(answer_text(ex.order, ids) + (tok.eos_token or ""), add_special_tokens=False)["input_ids"]
        empty = render_window(self.render, ex.query, [""] * n, ids).text
        room = self.max_length - len(tok(empty, add_special_tokens=special)["input_ids"]) - len(answer)
        budget = min(self.max_passage_tokens, max(8, room // n))
        cut = []
        for p in ex.passages:
            pid = tok(p, add_special_tokens=False)["input_ids"]
            if len(pid) > budget:
                self.passages_cut += 1                     # cut to max_passage_tokens, as at inference
                if budget < self.max_passage_tokens:       # cut further so the window fits max_length
                    self.truncated += 1
                p = tok.decode(pid[:budget])
            cut.append(p)
        self.pairs += n
        prompt = render_window(self.render, ex.query, cut, ids).text
        return tok(prompt, add_special_tokens=special)["input_ids"], answer

    def collate(self, examples: Sequence[Any]) -> dict[str, Any]:
        """Left-padded prompt+answer ids, LM labels over the kept tail, the first-answer position, target ranks."""
        import torch

        enc = [self.encode(ex) for ex in examples]
        width = max(len(p) + len(a) for p, a in enc)
        keep = max(len(a) for _, a in enc) + 1
        b = len(enc)
        input_ids = torch.full((b, width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        labels = torch.full((b, keep), -100, dtype=torch.long)
        first_pos = torch.zeros(b, dtype=torch.long)
        ranks = torch.zeros((b, self.window), dtype=torch.long)
        tiers = torch.zeros((b, self.window), dtype=torch.long)
        for r, ((p, a), ex) in enumerate(zip(enc, examples)):
            seq = p + a
            input_ids[r, width - len(seq):] = torch.tensor(seq)
            mask[r, width - len(seq):] = 1
            start = keep - len(a) - 1            # kept position of the prompt's last token ("[")
            labels[r, start:keep - 1] = torch.tensor(a)
            first_pos[r] = start
            for place, k in enumerate(ex.order):
                ranks[r, k] = place + 1
                # graded targets tie equal grades; a full order (teacher) makes every pair count
                tiers[r, k] = ex.grades[k] if ex.grades is not None else -(place + 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": input_ids, "attention_mask": mask, "position_ids": pos, "labels": labels,
                "first_pos": first_pos, "ranks": ranks, "tiers": tiers, "keep": keep}

    def compute_loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        import torch

        keep = int(batch["keep"])
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False)
        logits = out.logits[:, -keep:].float()
        labels = batch["labels"]
        lm = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                               ignore_index=-100)
        rows = torch.arange(logits.shape[0], device=logits.device)
        cand = torch.tensor(self.id_tokens, device=logits.device)
        first = logits[rows, batch["first_pos"]][:, cand]                   # [B, window]
        rank = weighted_ranknet(first, batch["ranks"], batch.get("tiers"))
        self.last_terms = {"lm": float(lm.detach()), "rank": float(rank.detach())}
        return self.rank_weight * rank + self.lm_weight * lm, out

    # ------------------------------------------------------------------ saving
    def save(self, model: Any, tokenizer: Any, folder: str | Path, **manifest: Any) -> Path:
        """An adapter folder ``FirstReranker(model=folder)`` loads (kind ``llm-adapter``; or a full model)."""
        from ..folders import model_fingerprint, write_manifest
        from ..io import atomic_dir
        from ..rerankers.first import KIND_LLM_ADAPTER

        info = {"kind": KIND_LLM_ADAPTER if hasattr(model, "peft_config") else "llm-model",
                "base_model": str(manifest.get("base_model")), "method": manifest.get("method"),
                "options": dict(manifest.get("options") or {}), "max_length": manifest.get("max_length"),
                "reranker": {"name": "first", "window": self.window,
                             "max_passage_tokens": self.max_passage_tokens, "template": self.template},
                "model_fingerprint": model_fingerprint(model), **(manifest.get("extra") or {})}
        with atomic_dir(folder) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_manifest(tmp, info)
        return Path(folder)


register_objective("first", FirstObjective)

__all__ = ["FirstObjective", "weighted_ranknet"]
