"""Mining rounds of dense-retriever training: static (once) and dynamic (ADORE, on a schedule).

:class:`Miner` fills the :class:`~rankkit.training.retriever_data.NegativeTable`:
round 0 from ``negatives.mine_from`` (BM25, the model itself as STAR does,
an index folder or a run file); with ``refresh_every=N`` a
:func:`refresh_callback` re-encodes the corpus with the model being trained
every N optimizer steps and re-mines (ADORE, Zhan et al. 2021), so the
negatives follow what the model currently confuses. :class:`TableCollator`
reads the table when a batch is built, which is how the swap reaches the
running trainer without rebuilding its dataloader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ..types import Dataset
from .retriever_config import NegativesOptions
from .retriever_data import (
    Example,
    FalseNegativeGuard,
    NegativeTable,
    mine_negatives,
    rank_with_model,
    rank_with_stage,
)

log = logging.getLogger(__name__)


class Miner:
    """One mining round = rank the corpus, sample negatives, apply the guard, swap the table."""

    def __init__(self, examples: Sequence[Example], dataset: Dataset, options: NegativesOptions,
                 guard: FalseNegativeGuard | None = None, stage: Any = None, encode_batch_size: int = 64,
                 show_progress: bool = False, cache_dir: Any = None):
        self.examples = list(examples)
        self.dataset = dataset
        self.options = options
        self.guard = guard
        self.stage = stage  # first stage of round 0 (BM25, an index, a Run); None = the model
        self.encode_batch_size = encode_batch_size
        self.show_progress = show_progress
        self.cache_dir = cache_dir
        self.table = NegativeTable(len(self.examples))
        self._qids = [ex.qid for ex in self.examples]

    def round(self, model: Any, step: int = 0) -> dict[str, Any]:
        """Mine afresh (from ``self.stage`` at step 0 when one is set, else from ``model``)."""
        opts = self.options
        t0 = time.perf_counter()
        use_stage = step == 0 and self.stage is not None
        if use_stage:
            ranking = rank_with_stage(self.stage, self.dataset, self._qids, opts.depth, self.cache_dir)
        else:
            ranking = rank_with_model(model, self.dataset, self._qids, opts.depth,
                                      self.encode_batch_size, self.show_progress)
        negatives, counts = mine_negatives(self.examples, ranking, self.dataset, opts.num_negatives,
                                           opts.depth, opts.skip_top, opts.seed + step, self.guard,
                                           opts.oversample)
        info = {"step": int(step), "source": "stage" if use_stage else "model", **counts,
                "seconds": round(time.perf_counter() - t0, 1)}
        self.table.update(negatives, info)
        log.info("mined negatives at step %d: %s", step, info)
        return self.table.rounds[-1]


def refresh_callback(miner: Miner, model: Any, every: int) -> Any:
    """A ``TrainerCallback`` that re-mines from ``model`` every ``every`` optimizer steps (not after the last)."""
    from transformers import TrainerCallback

    class RefreshNegatives(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            step = int(state.global_step)
            if every and step % every == 0 and step < int(state.max_steps):
                miner.round(model, step)

    return RefreshNegatives()


class TableCollator:
    """sentence-transformers' collator over rows whose negatives are looked up when the batch is built.

    Dataset rows hold ``anchor``, ``positive`` and ``example`` (the row's index
    in the table); the collator replaces ``example`` by ``negative_1..k`` texts
    from the table's current entries, then tokenizes as sentence-transformers does.
    """

    def __init__(self, base: Any, table: NegativeTable | None, text: Any):
        self.base = base
        self.table = table
        self.text = text
        self.valid_label_columns = base.valid_label_columns  # read by the trainer's sampler

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        rows = []
        for f in features:
            row = {"anchor": f["anchor"], "positive": f["positive"]}
            if self.table is not None:
                for j, doc in enumerate(self.table.negatives[int(f["example"])]):
                    row[f"negative_{j + 1}"] = self.text(doc)
            rows.append(row)
        return self.base(rows)
