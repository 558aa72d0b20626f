"""Claim verification on SciFact test with SmolLM2-135M: no retrieval vs BM25 top-k vs gold evidence.

One run reports, per condition, verdict accuracy and macro-F1 (labels scored by
the model's likelihood, rk.Generator mode="classify"), context recall of the
relevant abstracts, the predicted label distribution and per-stage wall time.
Each condition is also reported with contextual calibration (the label scores
of a content-free prompt subtracted: rk.Generator(calibrate=True)), computed
from the same forward passes.
The gold-evidence condition feeds the judged abstracts (qrels) as the context:
an upper bound for retrieval. Majority-class figures are printed for reference.
Optional rows: ``--generator-adapter FOLDER`` adds BM25 top-k with the generator
trained by ``rankkit train generator``; ``--compress BUDGET`` adds BM25 top-k
through a Compressor (LexRank + query similarity, BUDGET generator tokens) with
the untrained model (and with the trained one when both are given). Every row
reports the mean prompt tokens and the generator stage's seconds, and its macro-F1
difference from the plain BM25 top-k row with a paired bootstrap over claims.
``--conditions`` runs a subset (none, bm25, gold, trained, compressed), in the order given. The report is
rewritten after every condition and a rerun with the same ``--out`` skips the
conditions already in it, so an interrupted run loses one condition at most.

    PYTHONPATH=. python eval/rag_scifact.py [--limit N] [--threads 1] [--out eval/out/rag_scifact.json]
        [--generator-adapter eval/out/generator/smollm2-scifact] [--compress 256]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "beir" / "scifact"


def calibrated(answers: dict, prior) -> dict:
    """Answers relabelled by argmax(score - content-free score), as Generator(calibrate=True) does."""
    import dataclasses

    import numpy as np

    out = {}
    for qid, a in answers.items():
        if a.label_scores is None:
            out[qid] = a
            continue
        labels = list(a.label_scores)
        adjusted = np.array([a.label_scores[lab] for lab in labels]) - prior
        best = labels[int(np.argmax(adjusted))]
        out[qid] = dataclasses.replace(a, label=best, text=best,
                                       label_scores=dict(zip(labels, adjusted.tolist())))
    return out


def atomic_write(path: Path, text: str) -> None:
    from rankkit.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as fh:
        fh.write(text)


def resume(out: Path, claims_path: Path, args, n_claims: int) -> tuple[dict, list]:
    """Rows and per-claim lines of an earlier run with the same settings (empty when none)."""
    if not out.exists() or not claims_path.exists():
        return {}, []
    old = json.loads(out.read_text())
    same = all(old.get(k) == v for k, v in (("model", args.model), ("dtype", args.dtype), ("claims", n_claims),
                                             ("k", args.k), ("max_passage_tokens", args.max_passage_tokens),
                                             ("batch_size", args.batch_size)))
    if not same:
        print(f"{out} holds a run with other settings: starting afresh", flush=True)
        return {}, []
    per_claim = [json.loads(line) for line in claims_path.read_text().splitlines() if line.strip()]
    return old.get("conditions", {}), per_claim


def add_bootstrap(rows: dict, per_claim: list, verdicts: dict, baseline: str, n: int = 2000) -> None:
    """Macro-F1 difference of every row from ``baseline`` with a paired bootstrap over claims (seed 0):
    the 95% interval and the one-sided p (share of resamples where the row is not better)."""
    import numpy as np

    from rankkit.recipes import SCIFACT_LABELS

    def f1(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Macro-F1 of every row of (resamples x claims) label codes, as rankkit.rag_eval.macro_f1."""
        out = []
        for c in range(len(SCIFACT_LABELS)):
            tp = ((gold == c) & (pred == c)).sum(-1)
            fp = ((gold != c) & (pred == c)).sum(-1)
            fn = ((gold == c) & (pred != c)).sum(-1)
            den = 2 * tp + fp + fn
            out.append(np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0))
        return np.mean(out, axis=0)

    code = {lab: i for i, lab in enumerate(SCIFACT_LABELS)}
    by_cond: dict[str, dict[str, str]] = {}
    for r in per_claim:
        by_cond.setdefault(r["condition"], {})[r["qid"]] = r["label"]
    base = by_cond.get(baseline)
    if base is None:
        return
    qids = sorted(q for q in verdicts if q in base)
    samples = np.random.default_rng(0).integers(0, len(qids), size=(n, len(qids)))
    gold = np.array([code[verdicts[q]] for q in qids])
    b = np.array([code.get(base[q], -1) for q in qids])
    for name, labels in by_cond.items():
        if name == baseline or name not in rows or any(q not in labels for q in qids):
            continue
        a = np.array([code.get(labels[q], -1) for q in qids])
        diffs = f1(gold[samples], a[samples]) - f1(gold[samples], b[samples])
        lo, hi = np.quantile(diffs, [0.025, 0.975])
        delta = float(f1(gold, a) - f1(gold, b))
        p = float((diffs <= 0).mean())
        rows[name]["vs_bm25"] = f"{delta:+.3f} [{lo:+.3f}, {hi:+.3f}], p {p:.3f}"
        rows[name]["vs_bm25_bootstrap"] = {"delta": delta, "ci95": [float(lo), float(hi)], "p_one_sided": p,
                                           "resamples": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--k", type=int, default=3, help="passages in the prompt")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", "--queries", type=int, default=None, help="first N test claims only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-input-tokens", type=int, default=None,
                    help="context budget in tokens (default: the model's window)")
    ap.add_argument("--max-passage-tokens", type=int, default=None,
                    help="cut every abstract to this many tokens (default: whole abstracts)")
    ap.add_argument("--dtype", default="bfloat16",
                    help="weights dtype on CPU (bfloat16 is ~1.7x faster than float32 with avx512_bf16)")
    ap.add_argument("--generator-adapter", default=None,
                    help="adapter folder from `rankkit train generator`: adds a BM25 top-k row with it")
    ap.add_argument("--compress", type=int, default=None, metavar="BUDGET",
                    help="adds BM25 top-k rows through a Compressor keeping BUDGET tokens of the k passages")
    ap.add_argument("--conditions", default="none,bm25,gold,trained,compressed",
                    help="comma list of none, bm25, gold, trained, compressed (trained and compressed "
                         "also need --generator-adapter / --compress)")
    ap.add_argument("--out", default=str(ROOT / "eval" / "out" / "rag_scifact.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import rankkit as rk
    from rankkit.llm.loading import load_causal_lm
    from rankkit.rag_eval import load_verdicts
    from rankkit.recipes import SCIFACT_LABELS

    ds = rk.datasets.load_beir(args.data, split="test")
    queries = ds.queries.head(args.limit) if args.limit else ds.queries
    verdicts = {q: v for q, v in load_verdicts(Path(args.data) / "claims.jsonl", split="test").items()
                if q in queries}
    qrels = ds.qrels.subset(queries)
    gold = rk.Run({q: (list(d), [float(g) for g in d.values()]) for q, d in qrels.items()}, name="gold")

    t0 = time.perf_counter()
    load_causal_lm(args.model, dtype=args.dtype)  # load once; the Generators below share it
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm25 = rk.BM25.build(ds.corpus)
    index_s = time.perf_counter() - t0

    def generator(k: int, model: str | None = None) -> rk.Generator:
        return rk.Generator(model or args.model, corpus=ds.corpus, mode="classify", labels=SCIFACT_LABELS,
                            k=k, batch_size=args.batch_size, max_input_tokens=args.max_input_tokens,
                            max_passage_tokens=args.max_passage_tokens, dtype=args.dtype)

    order = [c.strip() for c in args.conditions.split(",") if c.strip()]
    wanted = set(order)
    unknown = wanted - {"none", "bm25", "gold", "trained", "compressed"}
    if unknown:
        raise SystemExit(f"--conditions: unknown {sorted(unknown)}; choose from none, bm25, gold, trained, "
                         "compressed")
    by_kind: dict[str, dict] = {c: {} for c in order}
    if "none" in wanted:
        by_kind["none"]["no retrieval"] = rk.Pipeline([generator(0)])
    if "bm25" in wanted:
        by_kind["bm25"][f"BM25 top-{args.k}"] = bm25 % 100 >> generator(args.k)
    if "gold" in wanted:
        by_kind["gold"]["gold evidence"] = rk.RunStage(gold) >> generator(args.k)
    trained = None
    if args.generator_adapter and wanted & {"trained", "compressed"}:
        trained = generator(args.k, args.generator_adapter).load()   # merge the adapter outside the timings
        if "trained" in wanted:
            by_kind["trained"][f"BM25 top-{args.k} +trained generator"] = bm25 % 100 >> trained
    if args.compress and "compressed" in wanted:
        for tag, gen in (("", generator(args.k)), (" +trained generator", trained)):
            if gen is not None:
                comp = rk.Compressor(ds.corpus, budget=args.compress, k=args.k, tokenizer=gen)
                by_kind["compressed"][f"BM25 top-{args.k} compressed to {args.compress}{tag}"] = \
                    bm25 % 100 >> comp >> gen
    conditions = {name: pipe for kind in by_kind.values() for name, pipe in kind.items()}   # in the order given
    out = Path(args.out)
    claims_path = out.with_suffix(".claims.jsonl")
    rows, per_claim = resume(out, claims_path, args, len(queries))
    gold_counts = Counter(verdicts.values())
    majority = gold_counts.most_common(1)[0]

    def write_report() -> dict:
        add_bootstrap(rows, per_claim, verdicts, baseline=f"BM25 top-{args.k}")
        report = {
            "model": args.model, "dtype": args.dtype, "claims": len(queries), "k": args.k,
            "threads": args.threads, "max_passage_tokens": args.max_passage_tokens,
            "generator_adapter": args.generator_adapter, "compress": args.compress,
            "batch_size": args.batch_size, "gold_verdicts": dict(gold_counts),
            "majority_baseline": {"label": majority[0], "accuracy": majority[1] / len(verdicts),
                                  "macro_f1": (2 * majority[1] / (majority[1] + len(verdicts))) / len(gold_counts)},
            "load_model_s": load_s, "bm25_index_s": index_s, "conditions": rows,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        atomic_write(claims_path, "".join(json.dumps(r) + "\n" for r in per_claim))
        atomic_write(out, json.dumps(report, indent=2))
        return report

    for name, pipe in conditions.items():
        if name in rows:
            print(f"{name}: already in {out}, skipped", flush=True)
            continue
        t0 = time.perf_counter()
        result = pipe(queries)
        wall = time.perf_counter() - t0
        gen = pipe.stages[-1]
        prior = gen.label_prior()
        lengths = gen.backend.count_tokens([a.prompt or "" for a in result.answers.values()])
        extra = {"prompt_tokens_mean": sum(lengths) / max(1, len(lengths)),
                 "generator_s": sum(v for k, v in result.timings.items() if k.endswith(":generator"))}
        comp = next((st for st in pipe.stages if isinstance(st, rk.Compressor)), None)
        if comp is not None:
            extra["compressor"] = comp.stats
        for variant, answers in (("", result.answers), (" +calibration", calibrated(result.answers, prior))):
            scores = rk.evaluate_rag(answers, verdicts=verdicts, qrels=qrels, labels=SCIFACT_LABELS)
            preds = Counter(a.label for a in answers.values())
            rows[name + variant] = {**scores, **extra, "predicted": dict(preds), "generator": gen.stats,
                                    "timings": result.timings, "wall_s": wall}
            print(f"{name}{variant}: acc {scores['verdict_accuracy']:.3f} macro-F1 "
                  f"{scores['verdict_macro_f1']:.3f} context recall {scores['context_recall']:.3f} "
                  f"prompt tokens {extra['prompt_tokens_mean']:.0f} generator {extra['generator_s']:.1f}s "
                  f"({wall:.0f}s) predicted {dict(preds)}", flush=True)
        rows[name]["label_prior"] = dict(zip(SCIFACT_LABELS, prior.tolist()))
        per_claim += [{"condition": name, "qid": q, "gold": verdicts.get(q), "label": a.label,
                       "scores": a.label_scores, "context": a.context} for q, a in result.answers.items()]
        per_claim += [{"condition": name + " +calibration", "qid": q, "gold": verdicts.get(q), "label": a.label}
                      for q, a in calibrated(result.answers, prior).items()]
        write_report()

    report = write_report()

    from rankkit.report import format_table

    print()
    print(format_table(
        ["condition", "accuracy", "macro-F1", "ΔF1 vs BM25 [95% CI], p", "context recall", "prompt tokens",
         "stage times (s)", "wall (s)"],
        [[name, r["verdict_accuracy"], r["verdict_macro_f1"], r.get("vs_bm25", ""), r["context_recall"],
          f"{r['prompt_tokens_mean']:.0f}",
          ", ".join(f"{k.split(':', 1)[1]} {v:.1f}" for k, v in r["timings"].items()), f"{r['wall_s']:.1f}"]
         for name, r in rows.items()]
        + [[f"majority ({majority[0]})", report["majority_baseline"]["accuracy"],
            report["majority_baseline"]["macro_f1"], "", "", "", "", ""]]))
    print(f"\nmodel load {load_s:.1f}s, BM25 index {index_s:.1f}s; wrote {args.out}")


if __name__ == "__main__":
    main()
