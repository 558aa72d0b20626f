"""Continual training of a reranker over SciFact -> Cranfield -> Vaswani: what each method forgets.

    PYTHONPATH=. python eval/continual.py                          # all methods, 300 steps per domain
    PYTHONPATH=. python eval/continual.py --methods osf,lora --steps 300
    PYTHONPATH=. python eval/continual.py --report                 # matrices + summary from the JSONs
    # smoke run (minutes): tiny budget, few queries, results kept apart
    PYTHONPATH=. python eval/continual.py --steps 2 --train-queries 4 --test-queries 3 --top 5 \
        --out eval/out/continual-smoke

Methods (each trains the MiniLM-L6 backbone with a new scoring head; the
shipped recipe's settings: batch 4 groups x 8 pairs, max_length 128, BM25
hard negatives from the top 50, warmup 5%, weight decay 0.01, seed 42):

- ``osf``: orthogonal-subspace fine-tuning (rankkit/training/osf.py); domain
  t trains on from the domain t-1 folder, preserving the top singular
  directions of every weight; the preserved fraction grows with the domains
  (``--osf-ranks``, default 0.25, 0.5, 0.75 of each layer's smaller side), as
  the paper preserves more as tasks accumulate;
- ``lora``: sequential LoRA (r 16 on query/key/value/dense): domain t trains
  a new LoRA on the merged domain t-1 model;
- ``full``: sequential full fine-tuning from the previous model;
- ``per_domain``: one LoRA adapter per domain, each from the base (no
  forgetting by construction; evaluated with the multi-adapter CrossEncoder,
  domain j scored with adapter j once it exists, else with the latest).

Query splits (labels of test queries are used only for evaluation):
SciFact: BEIR train queries for training, BEIR test (300) for testing;
Cranfield (225 judged queries) and Vaswani (93): a seeded split of the
judged query ids (``split_queries``, seed 0), 40% test, 60% train
(Cranfield 135 / 90, Vaswani 56 / 37). Evaluation: nDCG@10 of the BM25 top
``--top`` (default 20) of each test query reranked by the model.

After step t (trained on domain t) every domain's test set is scored: the
matrix ``a[t][j]``. Reported per method: the matrix, the final average
(mean of ``a[T][j]``) and the average forgetting (Chaudhry et al., 2018:
mean over j < T of ``max_{t<T} a[t][j] - a[T][j]``). Resumable: each
step's result is ``<out>/<method>/step<t>-<domain>.json`` (written
atomically, committed as it finishes; default out: eval/results/continual);
a finished step is skipped, and a step interrupted mid-training resumes from
its checkpoints (every 100 steps, under eval/out/continual). eval/out is not
tracked: in a fresh checkout a finished step whose model a later step still
needs is retrained first (same seed and settings). Wall time at
300 steps: 900 training steps per method at 3-8 s per step on one shared CPU
thread (1-2 h per method; the smoke run above took about 6 min for all four).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()  # relative: from the cwd
RESULTS = ROOT / "eval" / "results" / "continual"
MODELS = ROOT / "eval" / "out" / "continual"
CACHE = ROOT / "eval" / "cache"
DOMAINS = ["scifact", "cranfield", "vaswani"]
METHODS = ["osf", "lora", "full", "per_domain"]
TEST_FRACTION = 0.4
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["query", "key", "value", "dense"]}
LR = {"osf": 5e-5, "lora": 5e-4, "full": 5e-5, "per_domain": 5e-4}


# ------------------------------------------------------------------------- data
def domain(name: str) -> tuple[Any, list[str], Any, list[str]]:
    """(training dataset, train qids, test dataset, test qids) of one domain."""
    import rankkit as rk
    from rankkit.training.data import split_queries

    if name == "scifact":
        train = rk.datasets.load_beir(SHARED / "beir" / "scifact", split="train")
        test = rk.datasets.load_beir(SHARED / "beir" / "scifact", split="test")
        return train, sorted(train.qrels), test, sorted(test.qrels)
    if name == "cranfield":
        ds = rk.datasets.load_beir(SHARED / "beir" / "cranfield", split="test")
    elif name == "vaswani":
        v = SHARED / "trec" / "vaswani"
        ds = rk.datasets.load_trec(v / "doc-text.trec", v / "query-text.trec", v / "qrels")
    else:
        raise SystemExit(f"unknown domain {name!r}")
    train_q, test_q = split_queries(list(ds.qrels), TEST_FRACTION, seed=0)
    return ds, train_q, ds, test_q


def training_groups(ds: Any, qids: list[str], limit: int | None) -> list[Any]:
    import rankkit as rk
    from rankkit.training.data import groups_from_dataset

    groups, _ = groups_from_dataset(ds, rk.BM25.build(ds.corpus), num_negatives=7, depth=50, repeats=6,
                                    seed=0, qids=qids[: limit or None], cache_dir=CACHE)
    return groups


def test_set(ds: Any, qids: list[str], limit: int | None, top: int) -> tuple[Any, Any]:
    """(dataset of the test queries, BM25 top-``top`` run)."""
    import rankkit as rk
    from rankkit.training.data import cached_run

    qids = qids[: limit or None]
    sub = rk.Dataset(ds.corpus, ds.queries.subset(qids), ds.qrels.subset(qids))
    run = cached_run(rk.BM25.build(ds.corpus), sub.queries, CACHE, ds.corpus.fingerprint(), k=100)
    return sub, run.subset(qids).top(top)


# ------------------------------------------------------------------------- files
def write_json(path: Path, obj: Any) -> None:
    from rankkit.io import atomic_path

    with atomic_path(path) as fh:
        fh.write(json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# ------------------------------------------------------------------------- one step
def train_step(method: str, t: int, start: str, groups: list[Any], args: argparse.Namespace) -> Any:
    from rankkit.training.trainer import TrainOptions, train

    folder = MODELS / args.tag / method / f"{t}-{DOMAINS[t]}"
    if (folder / "rankkit.json").exists():
        return folder, None
    if method == "osf":
        adapter, options = "osf", {"effective_rank": args.osf_ranks[min(t, len(args.osf_ranks) - 1)]}
    elif method == "full":
        adapter, options = "full", None
    else:
        adapter, options = "lora", LORA
    opts = TrainOptions(steps=args.steps, batch_size=4, group_size=8, lr=args.lr.get(method, LR[method]),
                        warmup_ratio=0.05, weight_decay=0.01, seed=42, save_steps=100 if args.steps > 100 else 0,
                        logging_steps=max(1, min(25, args.steps // 4)), threads=args.threads)
    res = train(groups, start, folder, method=adapter, adapter_options=options, loss="softmax_ce",
                max_length=128, options=opts, checkpoint_dir=Path(f"{folder}.ckpt"))
    return folder, {"steps": res.steps, "seconds": round(res.seconds, 1), "trainable": res.trainable,
                    "total": res.total, "final_loss": res.final_loss, "adapter": adapter, "options": options,
                    "lr": opts.lr}


def score(method: str, folders: list[Path], tests: dict[str, tuple[Any, Any]], args: argparse.Namespace,
          ) -> dict[str, float]:
    """nDCG@10 on every domain's test set with the model after the last of ``folders``."""
    import rankkit as rk

    if method == "per_domain":
        ce = rk.CrossEncoder(args.base, adapters={DOMAINS[i]: f for i, f in enumerate(folders)},
                             batch_size=32, show_progress=False)
        pick = {d: ce.use(d if d in ce.adapter_manifests else DOMAINS[len(folders) - 1]) for d in DOMAINS}
    else:
        ce = rk.CrossEncoder(folders[-1], batch_size=32, show_progress=False)
        pick = dict.fromkeys(DOMAINS, ce)
    out = {}
    for d, (sub, bm25) in tests.items():
        reranker = pick[d]
        reranker.corpus = sub.corpus
        out[d] = rk.evaluate(reranker(sub.queries, bm25), sub.qrels, ["nDCG@10"])["nDCG@10"]
    return out


def run_method(method: str, data: dict[str, Any], tests: dict[str, Any], args: argparse.Namespace) -> None:
    folders: list[Path] = []
    start = args.base
    for t, dom in enumerate(DOMAINS):
        path = args.out / method / f"step{t}-{dom}.json"
        done = read_json(path)
        if done is not None:
            folder = Path(done["folder"])
            later = [args.out / method / f"step{u}-{DOMAINS[u]}.json" for u in range(t + 1, len(DOMAINS))]
            if not (folder / "rankkit.json").exists() and any(not p.exists() for p in later):
                # eval/out is not tracked: a fresh checkout has the JSON but not the model a later step starts
                # from (or, per_domain, scores with); retrain it with the same settings (seeded)
                print(f"{method} step {t} ({dom}): done, but its model {folder} is gone; retraining it")
                folder, _ = train_step(method, t, start, data[dom], args)
            folders.append(folder)
            start = str(folder) if method != "per_domain" else args.base
            print(f"{method} step {t} ({dom}): done, {done['ndcg10']}")
            continue
        t0 = time.perf_counter()
        folder, info = train_step(method, t, start, data[dom], args)
        folders.append(folder)
        start = str(folder) if method != "per_domain" else args.base
        ndcg = score(method, folders, tests, args)
        write_json(path, {"method": method, "step": t, "domain": dom, "folder": str(folder), "train": info,
                          "ndcg10": ndcg, "seconds": round(time.perf_counter() - t0, 1),
                          "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
                          "date": time.strftime("%Y-%m-%d %H:%M")})
        print(f"{method} step {t} ({dom}): {ndcg}")


# ------------------------------------------------------------------------- report
def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Matrix a[t][j], final average, average forgetting (over the domains before the last)."""
    a = [[r["ndcg10"][d] for d in DOMAINS] for r in sorted(rows, key=lambda r: r["step"])]
    T = len(a) - 1
    final = sum(a[T]) / len(a[T])
    forgetting = [max(a[t][j] for t in range(j, T)) - a[T][j] for j in range(T)] if T > 0 else []
    return {"matrix": a, "final_average": final,
            "average_forgetting": sum(forgetting) / len(forgetting) if forgetting else None}


def report(out: Path) -> str:
    lines = ["| method | step (trained on) | " + " | ".join(DOMAINS) + " |", "|---|---|" + "---|" * len(DOMAINS)]
    summaries = []
    bm25 = read_json(out / "bm25.json") or {}
    if bm25:
        lines.append("| BM25 | - | " + " | ".join(f"{bm25[d]:.4f}" for d in DOMAINS) + " |")
    for m in METHODS:
        rows = [read_json(p) for p in sorted((out / m).glob("step*.json"))]
        if not rows:
            continue
        for r in sorted(rows, key=lambda r: r["step"]):
            lines.append(f"| {m} | {r['step']} ({r['domain']}) | " +
                         " | ".join(f"{r['ndcg10'][d]:.4f}" for d in DOMAINS) + " |")
        s = summary(rows)
        complete = len(rows) == len(DOMAINS)
        summaries.append(f"| {m} | {s['final_average']:.4f} | "
                         f"{'-' if s['average_forgetting'] is None else format(s['average_forgetting'], '.4f')} | "
                         f"{'yes' if complete else f'{len(rows)} of {len(DOMAINS)} steps'} |")
    text = "\n".join(lines)
    if summaries:
        text += ("\n\n| method | final average nDCG@10 | average forgetting | complete |\n|---|---|---|---|\n"
                 + "\n".join(summaries))
    write_json(out / "summary.json", {m: summary([read_json(p) for p in sorted((out / m).glob("step*.json"))])
                                      for m in METHODS if list((out / m).glob("step*.json"))})
    (out / "table.md").write_text(text + "\n", encoding="utf-8")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=300, help="training steps per domain and method (<= 300)")
    ap.add_argument("--base", default="minilm")
    ap.add_argument("--top", type=int, default=20, help="rerank the BM25 top N of each test query")
    ap.add_argument("--train-queries", type=int, default=None, help="train on the first N training queries")
    ap.add_argument("--test-queries", type=int, default=None, help="evaluate the first N test queries")
    ap.add_argument("--osf-ranks", default="0.25,0.5,0.75", help="OSF preserved fraction per domain")
    ap.add_argument("--lr", default="", help="method=rate,... overriding the defaults " + str(LR))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS, help="result JSONs (default eval/results/continual)")
    ap.add_argument("--report", action="store_true", help="only build the tables from the JSONs")
    args = ap.parse_args()
    args.out = args.out if args.out.is_absolute() else ROOT / args.out
    args.osf_ranks = [float(x) for x in args.osf_ranks.split(",")]
    args.lr = {k: float(v) for k, v in (kv.split("=") for kv in args.lr.split(",") if kv)}
    args.tag = args.out.name
    if args.report:
        print(report(args.out))
        return
    import torch

    import rankkit as rk

    torch.set_num_threads(args.threads)
    data, tests, bm25 = {}, {}, {}
    for d in DOMAINS:
        ds, train_q, test_ds, test_q = domain(d)
        data[d] = training_groups(ds, train_q, args.train_queries)
        tests[d] = test_set(test_ds, test_q, args.test_queries, args.top)
        bm25[d] = rk.evaluate(tests[d][1], tests[d][0].qrels, ["nDCG@10"])["nDCG@10"]
        print(f"{d}: {len(train_q)} train / {len(test_q)} test queries, {len(data[d])} groups, "
              f"BM25 top-{args.top} nDCG@10 {bm25[d]:.4f}")
    write_json(args.out / "bm25.json", bm25)
    for m in args.methods.split(","):
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r} (choose {', '.join(METHODS)})")
        run_method(m, data, tests, args)
    print(report(args.out))


if __name__ == "__main__":
    main()
