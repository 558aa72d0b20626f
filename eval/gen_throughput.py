"""Generation throughput: rk.Generator vs a plain model.generate loop, same prompts and batch size.

Prompts are rk.Generator's own (SciFact test queries, BM25 top-k passages, SmolLM2 chat
template); the plain loop tokenises them in their given order, left-pads each batch and
calls model.generate greedily, as a user would by hand. Tokens are counted the same way
for both (up to and including the end-of-turn token). Runs alternate in ABBA order so
that neither side always runs first on a shared, noisy machine; the median and the best
(least disturbed) repetition of each side are reported, with their ratios, both per
wall-clock second and per CPU second of this process (time.process_time: what the work
costs, independent of how much CPU other jobs on the machine take).

    PYTHONPATH=. python eval/gen_throughput.py [--queries 32] [--batch-size 8] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RANKKIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "beir" / "scifact"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--max-passage-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "eval" / "out" / "gen_throughput.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import rankkit as rk
    from rankkit.llm.loading import load_causal_lm
    from rankkit.llm.transformers_backend import eos_ids, generated_lengths

    ds = rk.datasets.load_beir(DATA, split="test")
    queries = ds.queries.head(args.queries)
    run = (rk.BM25.build(ds.corpus) % 100)(queries)
    model, tok = load_causal_lm(args.model)
    gen = rk.Generator(args.model, corpus=ds.corpus, k=args.k, max_new_tokens=args.max_new_tokens,
                       batch_size=args.batch_size, max_passage_tokens=args.max_passage_tokens,
                       show_progress=False)
    prompts = [a.prompt for a in gen(queries, run).answers.values()]  # also a warm-up
    stop = eos_ids(model, tok)

    def with_generator() -> tuple[int, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        gen(queries, run)
        return gen.stats["generated_tokens"], time.perf_counter() - t0, time.process_time() - c0

    def plain_loop() -> tuple[int, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        with torch.inference_mode():
            for i in range(0, len(prompts), args.batch_size):
                enc = tok(prompts[i:i + args.batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False)
                out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
                n += sum(generated_lengths(out[:, enc["input_ids"].shape[1]:], stop))
        return n, time.perf_counter() - t0, time.process_time() - c0

    runs: dict[str, list[tuple[int, float, float]]] = {"rk.Generator": [], "model.generate loop": []}
    sides = [("rk.Generator", with_generator), ("model.generate loop", plain_loop)]
    for rep in range(args.repeats):
        for name, fn in (sides if rep % 2 == 0 else sides[::-1]):
            tokens, secs, cpu = fn()
            runs[name].append((tokens, secs, cpu))
            print(f"rep {rep + 1} {name}: {tokens} tokens in {secs:.1f}s wall ({tokens / secs:.2f} "
                  f"tok/s), {cpu:.1f}s CPU ({tokens / cpu:.2f} tok/CPU-s)", flush=True)
    report: dict = {"model": args.model, "queries": args.queries, "batch_size": args.batch_size,
                    "max_new_tokens": args.max_new_tokens, "k": args.k,
                    "max_passage_tokens": args.max_passage_tokens, "threads": args.threads,
                    "runs": runs, "date": time.strftime("%Y-%m-%d %H:%M")}
    for clock, col in (("wall", 1), ("cpu", 2)):
        for stat, fn in (("median", statistics.median), ("best", max)):
            rate = {name: fn(r[0] / r[col] for r in rs) for name, rs in runs.items()}
            ratio = rate["rk.Generator"] / rate["model.generate loop"]
            report[f"{stat}_{clock}"] = {**rate, "ratio": ratio}
            print(f"{stat} tokens per {clock} second: rk.Generator {rate['rk.Generator']:.2f}, plain "
                  f"loop {rate['model.generate loop']:.2f}; ratio {ratio:.3f} (target >= 0.95)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
