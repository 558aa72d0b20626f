"""Unbiased learning to rank from clicks: click logs, click models, debiased losses.

Light to import: numpy only at module level; torch loads inside the functions that
train (``rankkit.ultr.losses``, ``rankkit.ultr.features``).

- :mod:`rankkit.ultr.clicklog`: the click-log format (JSONL / Parquet) and the Baidu-ULTR reader
- :mod:`rankkit.ultr.simulate`: position-based and cascade click models, sessions over a logging ranker
- :mod:`rankkit.ultr.losses`: naive, IPS (pointwise / pairwise / listwise) and DLA objectives
- :mod:`rankkit.ultr.features`: SVMlight reader with query groups and a small MLP ranker trained on clicks
"""

from __future__ import annotations

from .clicklog import (
    ClickLog,
    read_baidu_annotations,
    read_baidu_ultr,
    read_click_log,
    write_click_log,
)
from .simulate import (
    ULTRA_EXAMINATION,
    CascadeModel,
    PositionBasedModel,
    click_probability,
    simulate_clicks,
)

__all__ = [
    "CascadeModel", "ClickLog", "PositionBasedModel", "ULTRA_EXAMINATION", "click_probability",
    "read_baidu_annotations", "read_baidu_ultr", "read_click_log", "simulate_clicks", "write_click_log",
]
