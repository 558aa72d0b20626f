"""Memory cost of each extra adapter on one base model, and the cost of switching adapters.

    PYTHONPATH=. python eval/multi_adapter.py                   # minilm-scifact + a second adapter
    PYTHONPATH=. python eval/multi_adapter.py --second DIR      # with a trained second adapter

Loads the shipped ``minilm-scifact`` LoRA adapter and a second adapter onto
one MiniLM base (``rankkit.rerankers.multi_adapter``) and reports parameter
bytes: the base alone, each adapter's own tensors (LoRA matrices and its copy
of the scoring head), and the growth of the whole model when the second one
is added; then the time of one ``set_adapter`` switch and whether the scores
of each adapter equal those of that adapter loaded alone. Without
``--second``, the second adapter is the shipped one's configuration with
other (random) weights: memory depends only on the shapes. Writes
``eval/results/multi_adapter.json``. About 20 s on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "eval" / "results" / "multi_adapter.json"
WORK = ROOT / "eval" / "out" / "multi_adapter"
QUERIES = ["aspirin and heart attack risk", "vitamin d deficiency in the elderly"] * 8
DOCS = ["Daily aspirin reduces myocardial infarction in adults.", "Vitamin D levels were low in 40% of cases."] * 8


def second_adapter(folder: Path) -> Path:
    """The shipped adapter's configuration with other weights (same shapes, so the same memory)."""
    import torch

    from rankkit.folders import load_reranker, read_manifest, save_reranker
    from rankkit.models import resolve_model

    if (folder / "rankkit.json").exists():
        return folder
    shipped = resolve_model("minilm-scifact").path
    model, tok, manifest = load_reranker(shipped)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                p.add_(0.01 * torch.randn_like(p))
    meta = read_manifest(shipped) or {}
    return save_reranker(model, tok, folder, base_model=meta["base_model"], method=meta["method"],
                         options=meta.get("options"), max_length=meta.get("max_length"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--second", type=Path, default=None, help="a second adapter folder on the MiniLM base")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import numpy as np
    import torch

    from rankkit.folders import load_base
    from rankkit.models import resolve_model
    from rankkit.rerankers.cross_encoder import CrossEncoder
    from rankkit.rerankers.multi_adapter import adapter_bytes, load_adapters, parameter_bytes

    torch.set_num_threads(args.threads)
    shipped = resolve_model("minilm-scifact").path
    second = args.second or second_adapter(WORK / "second")
    base, _, _ = load_base("minilm")
    one = load_adapters("minilm", {"scifact": shipped})
    two = load_adapters("minilm", {"scifact": shipped, "second": second})
    ce = CrossEncoder("minilm", adapters={"scifact": shipped, "second": second}, show_progress=False)
    t0 = time.perf_counter()
    for i in range(20):
        ce.use("second" if i % 2 else "scifact").predict(QUERIES[:1], DOCS[:1])
    switch_ms = (time.perf_counter() - t0) / 20 * 1e3
    same = {}
    for name, folder in (("scifact", shipped), ("second", second)):
        alone = CrossEncoder("minilm", adapters={name: folder}, show_progress=False).predict(QUERIES, DOCS)
        same[name] = bool(np.array_equal(ce.use(name).predict(QUERIES, DOCS), alone))
    result = {
        "base_bytes": parameter_bytes(base),
        "one_adapter_model_bytes": parameter_bytes(one.model),
        "two_adapter_model_bytes": parameter_bytes(two.model),
        "extra_bytes_second_adapter": parameter_bytes(two.model) - parameter_bytes(one.model),
        "adapter_bytes": {n: adapter_bytes(two.model, n) for n in two.names},
        "adapter_share_of_base": round(adapter_bytes(two.model, "second") / parameter_bytes(base), 4),
        "switch_and_score_one_pair_ms": round(switch_ms, 2),
        "scores_equal_adapter_alone": same,
        "second_adapter": str(second),
        "threads": args.threads,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    from rankkit.io import atomic_path

    with atomic_path(OUT) as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
