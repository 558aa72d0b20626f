"""Unbiased learning to rank for a text reranker on SciFact: naive clicks, IPS and DLA.

1. Clicks: ``--sessions`` (default 20,000) sessions drawn uniformly over the SciFact
   train queries; each shows the BM25 top 10 and clicks by the position-based
   model with examination ``(1/rank)^eta`` (``--eta``, default 1), ``P(click | examined) = 1.0`` for a
   document the qrels mark relevant and 0.1 otherwise (ULTRA's mapping with max
   grade 1: SciFact's qrels are binary), seed ``--seed``. Written to
   ``eval/out/ultr_text/clicks.jsonl``; sessions are aggregated per (query, list)
   by the ``clicks`` data source (the session count is the list weight).
2. The same LoRA MiniLM cross-encoder (base ``minilm``, the shipped recipe's
   adapter and optimiser settings, 128 tokens) trained three times at the same
   budget through ``rankkit train reranker`` configs (written next to the clicks):
   ``loss: naive``, ``loss: ips`` with the true propensities ``1/rank``, and ``loss: dla``.
3. Each reranks the BM25 top ``--k`` (default 20) of the 300 SciFact test queries;
   nDCG@10 with a paired t-test DLA vs naive (``rk.compare``, per test query) and
   DLA's estimated propensities against the true ones.

    RANKKIT_SHARED_DATA=../shared/data PYTHONPATH=. python eval/ultr_text.py --steps 100 --batch-size 3 --k 20 --threads 2

Budget: on the shared 2-core CPU a LoRA step of 3 lists x 10 documents (30 pairs,
128 tokens) took 2.3-2.5 s when the machine was quiet (10-18 s when other jobs
ran) and reranking ~85 pairs/s, so the defaults are 100 steps per method (300 of
the 809 aggregated lists) and the top 20; results and their reading are in
eval/RESULTS.md. ``--propensity-lr`` sets DLA's propensity learning rate.

Resumable: a method whose model folder exists is not retrained, and an interrupted
training continues from its last checkpoint (every ``--save-steps``). Writes
``eval/out/ultr_text.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
SCIFACT = SHARED / "beir" / "scifact"
OUT = ROOT / "eval" / "out"
WORK = OUT / "ultr_text"
CACHE = ROOT / "eval" / "cache"
METHODS = ("naive", "ips", "dla")
RANKS = 10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def true_propensities(eta: float) -> list[float]:
    """The click model's examination probabilities ``(1/rank)^eta`` at ranks 1..RANKS."""
    from rankkit.ultr import PositionBasedModel

    return PositionBasedModel(eta=eta, max_grade=1).examination(RANKS).tolist()


def simulate(n_sessions: int, seed: int, eta: float = 1.0) -> Path:
    """The click log of step 1 (reused when present)."""
    import rankkit as rk
    from rankkit.training.data import cached_run
    from rankkit.ultr import PositionBasedModel, simulate_clicks, write_click_log

    path = WORK / (f"clicks-{n_sessions}-s{seed}.jsonl" if eta == 1.0 else f"clicks-{n_sessions}-s{seed}-eta{eta:g}.jsonl")
    if path.exists():
        return path
    ds = rk.datasets.load_beir(SCIFACT, split="train")
    bm25 = cached_run(rk.BM25.build(ds.corpus), ds.queries, CACHE, ds.corpus.fingerprint(), k=100)
    model = PositionBasedModel(eta=eta, max_grade=1)
    clicks = simulate_clicks(bm25, {q: ds.qrels[q] for q in ds.qrels}, n_sessions, model, k=RANKS,
                             seed=seed, queries=dict(zip(ds.queries.ids, ds.queries.texts)))
    WORK.mkdir(parents=True, exist_ok=True)
    write_click_log(clicks, path)
    log(f"simulated {len(clicks)} sessions over {len(set(clicks.qids.tolist()))} train queries; "
        f"CTR by rank {[round(float(x), 3) for x in clicks.ctr_by_position()]}")
    return path


def config(method: str, clicks: Path, steps: int, batch_size: int, threads: int, save_steps: int,
           propensity_lr: float, eta: float = 1.0) -> Path:
    """A ``rankkit train reranker`` config for ``method`` (the recipe's settings, clicks as data)."""
    import yaml

    loss: Any = {"naive": "naive",
                 "ips": {"name": "ips", "options": {"propensities": [round(p, 6) for p in true_propensities(eta)],
                                                    "max_weight": 100}},
                 "dla": {"name": "dla", "options": {"ranks": RANKS, "propensity_lr": propensity_lr}}}[method]
    cfg = {"base_model": "minilm", "output_dir": str(WORK / f"model-{method}"),
           "checkpoint_dir": str(WORK / f"model-{method}.checkpoints"), "max_length": 128,
           "adapter": {"method": "lora", "options": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                                     "target_modules": ["query", "key", "value", "dense"]}},
           "loss": loss,
           "data": [{"source": "clicks", "path": str(clicks), "corpus": str(SCIFACT), "queries": str(SCIFACT),
                     "max_rank": RANKS}],
           "train": {"steps": steps, "batch_size": batch_size, "lr": 5.0e-4, "warmup_ratio": 0.05,
                     "weight_decay": 0.01, "seed": 42, "bf16": True, "save_steps": save_steps,
                     "logging_steps": 10, "threads": threads}}
    path = WORK / f"{method}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train(method: str, cfg_path: Path) -> dict[str, Any]:
    from rankkit.training.config import load_config, run_config

    folder = WORK / f"model-{method}"
    if not (folder / "rankkit.json").exists():
        log(f"training {method}: python -m rankkit train reranker --config {cfg_path}")
        res = run_config(load_config(cfg_path))
        log(f"trained {method}: {res.steps} steps in {res.seconds:.0f} s ({res.seconds_per_step:.2f} s/step), "
            f"final loss {res.final_loss}")
    manifest = json.loads((folder / "rankkit.json").read_text())
    return manifest["training"]


def rerank(method: str, k: int, threads: int) -> Any:
    """The method's reranking of the BM25 top ``k`` of the test queries (cached as a TREC run)."""
    import rankkit as rk

    path = WORK / f"{method}.test.top{k}.trec"
    if path.exists():
        return rk.Run.read_trec(path), 0.0
    ds = rk.datasets.load_beir(SCIFACT, split="test")
    first = bm25_test(k)
    ce = rk.CrossEncoder(WORK / f"model-{method}", corpus=ds.corpus, batch_size=32, dtype="bfloat16",
                         show_progress=False)
    t0 = time.perf_counter()
    run = ce.transform(ds.queries, first)
    secs = time.perf_counter() - t0
    run.write_trec(path)
    return run, secs


def bm25_test(k: int) -> Any:
    import rankkit as rk
    from rankkit.training.data import cached_run

    ds = rk.datasets.load_beir(SCIFACT, split="test")
    return cached_run(rk.BM25.build(ds.corpus), ds.queries, CACHE, ds.corpus.fingerprint(), k=100).top(k)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global WORK
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=3, help="click lists (of 10 documents) per step")
    ap.add_argument("--save-steps", type=int, default=20)
    ap.add_argument("--propensity-lr", type=float, default=0.1)
    ap.add_argument("--eta", type=float, default=1.0, help="position bias: examination (1/rank)^eta")
    ap.add_argument("--k", type=int, default=20, help="rerank the BM25 top k of each test query")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--work", default=str(WORK), help="clicks, configs, models and runs go here")
    ap.add_argument("--out", default=str(OUT / "ultr_text.json"))
    args = ap.parse_args(argv)
    WORK = Path(args.work).resolve()   # config paths resolve against the config file

    import torch

    import rankkit as rk

    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    clicks = simulate(args.sessions, args.seed, args.eta)
    training = {}
    ds = rk.datasets.load_beir(SCIFACT, split="test")
    systems: dict[str, Any] = {"bm25": bm25_test(args.k)}
    rerank_s = {}
    for m in methods:   # one after another; each method's test run is written before the next trains
        training[m] = train(m, config(m, clicks, args.steps, args.batch_size, args.threads, args.save_steps,
                                      args.propensity_lr, args.eta))
        systems[m], rerank_s[m] = rerank(m, args.k, args.threads)
        log(f"reranked the test queries with {m} ({rerank_s[m]:.0f} s)")
    everything = rk.compare(systems, ds, ["nDCG@10"], baseline="bm25")
    print(everything.table())
    result: dict[str, Any] = {
        "sessions": args.sessions, "seed": args.seed, "click_model": {"model": "pbm", "eta": args.eta, "max_grade": 1,
                                                                       "eps_minus": 0.1, "eps_plus": 1.0},
        "k": args.k, "test_queries": len(ds.queries), "nDCG@10": {n: everything.means[n]["nDCG@10"]
                                                                 for n in systems},
        "pvalues_vs_bm25": everything.pvalues,
        "training": {m: {"steps": t["steps"], "seconds": t["seconds"], "objective": t["objective"],
                         "data": t["data"]["sources"][0]} for m, t in training.items()},
        "rerank_seconds": rerank_s,
    }
    if "dla" in methods and "naive" in methods:
        pair = rk.compare({"naive": systems["naive"], "dla": systems["dla"]}, ds, ["nDCG@10"], baseline="naive",
                          correction="none")
        result["dla_vs_naive"] = {"delta": pair.means["dla"]["nDCG@10"] - pair.means["naive"]["nDCG@10"],
                                  "p_value": pair.pvalues["dla"]["nDCG@10"], "test": "paired t-test"}
        est = training["dla"]["objective"].get("propensities", [])
        true = true_propensities(args.eta)[: len(est)]
        result["dla_propensities"] = {"estimated": est, "true": true,
                                      "mean_abs_error": sum(abs(a - b) for a, b in zip(est, true)) / max(len(est), 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "training"}, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
