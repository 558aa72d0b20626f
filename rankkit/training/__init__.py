"""Training rerankers (``rankkit train reranker --config FILE.yaml``).

Where things go (each is one module and one registry call, ``register_*``):

- a training objective (batch + loss; e.g. LM + ranking on LLM logits, an RL
  reward): ``objectives.py``, ``OBJECTIVES`` / ``register_objective``;
- a learning-to-rank loss for the default listwise objective: ``losses.py``, ``LOSSES``;
- an adapter method (peft config, task type, callbacks, regulariser):
  ``adapters.py``, ``ADAPTERS`` / ``register_adapter``;
- a data source for configs (``data: [{source: NAME}]``): ``sources.py``,
  ``DATA_SOURCES`` / ``register_data_source``.

``trainer.py`` (the HF ``Trainer`` loop) and ``config.py`` (YAML -> train)
need no edit for any of them. The click-log source and the click objectives
(``click_data.py``, ``click_objectives.py``) register themselves on import, below. Model folders are read and written by
``rankkit.folders``, which inference imports without importing this package.
"""

from __future__ import annotations

# built-in objectives and sources kept in their own modules register themselves on import
# click_data: source 'clicks'; click_objectives: naive/ips/dla; first_objective: "first" (LM + ranking
# loss for causal-LM listwise rerankers)
from . import click_data, click_objectives, first_objective  # noqa: F401
