"""Dense retriever training: a sentence-transformers bi-encoder, LoRA (any registered method) or full.

    >>> from rankkit.training.retriever import train_retriever
    >>> res = train_retriever(dataset, "out/minilm-retriever", base_model="minilm", method="lora")
    >>> dense = rk.DenseRetriever.build(corpus, model=res.folder)   # re-encodes with the trained model

The loop, sampler, scheduler, checkpoints and the contrastive losses are
sentence-transformers' own (``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` or its cached, gradient-cache variant): every
other pair of a batch is an in-batch negative, and each pair brings
``negatives.num_negatives`` hard negatives from the mining rounds
(``retriever_mining.py``). Adapters come from ``training.adapters.ADAPTERS``
through ``training.peft.add_adapter`` on the transformer inside the
sentence-transformers model (``task_type=FEATURE_EXTRACTION``); the method's
callbacks and regulariser (AdaLoRA) apply as in reranker training.

The saved folder carries a ``rankkit.json`` (kind ``dense-retriever-adapter``
with the peft adapter files, or ``dense-retriever`` with a full
sentence-transformers model), the base model, its fingerprint, the adapter
method and the training summary; ``SentenceEncoder`` / ``DenseRetriever``
load it by folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RankkitError
from ..io import PathLike, atomic_dir
from ..types import Dataset
from .distributed import on_main
from .retriever_config import LOSSES, NegativesOptions, RetrieverRecipe, RetrieverTrainOptions

log = logging.getLogger(__name__)


@dataclass
class RetrieverTrainResult:
    folder: Path
    method: str
    steps: int
    seconds: float
    trainable: int
    total: int
    examples: int
    losses: list[float]
    mining: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    index: Path | None = None  # the index re-encoded with the trained model, when the recipe asks

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


def load_model(base_model: str, max_seq_length: int | None = None, device: str | None = None) -> Any:
    """The base SentenceTransformer (named model, folder or cached HF id; never a download offline)."""
    from ..models import missing_model_error, offline, resolve_model
    from ..retrievers.encoder import load_sentence_transformer

    ref = resolve_model(base_model)
    if ref.gguf_file is not None:
        raise ConfigError(f"model {base_model!r} is a GGUF language model, not a bi-encoder")
    try:
        model, manifest = load_sentence_transformer(ref.location, device, offline() or ref.path is not None)
    except RankkitError:
        raise
    except (OSError, ValueError) as e:
        raise missing_model_error(str(base_model), e) from e
    if manifest is not None and manifest["kind"] != "dense-retriever":
        raise ConfigError(f"{base_model}: continue training from a full model folder or the base "
                          f"{manifest.get('base_model')!r}, not from an adapter folder")
    if max_seq_length:
        model.max_seq_length = int(max_seq_length)
    return model


def wrap_adapter(model: Any, method: str, options: dict[str, Any] | None, steps: int) -> Any:
    """Put the adapter ``method`` on the transformer inside ``model``; returns the peft model (or None)."""
    from ..retrievers.encoder import backbone_attr
    from .peft import add_adapter

    attr = backbone_attr(model)
    net = add_adapter(getattr(model[0], attr), method, options, total_steps=steps,
                      task_type="FEATURE_EXTRACTION")
    setattr(model[0], attr, net)
    return net if hasattr(net, "peft_config") else None


def _loss(model: Any, opts: RetrieverTrainOptions, regularizer: Any, peft_model: Any) -> Any:
    """The sentence-transformers loss, plus the adapter's regulariser when it has one (AdaLoRA)."""
    import torch
    from sentence_transformers.sentence_transformer import losses

    try:
        loss = getattr(losses, LOSSES[opts.loss])(model, **opts.loss_options)
    except TypeError as e:
        raise ConfigError(f"loss.options: bad option for {opts.loss!r} ({e})") from e
    if peft_model is None or regularizer(peft_model) is None:
        return loss

    class Regularized(torch.nn.Module):
        """``loss + regularizer(peft model)`` (rankkit's trainer adds the same term for rerankers)."""

        def __init__(self) -> None:
            super().__init__()
            self.loss = loss
            self.model = model

        def forward(self, features: Any, labels: Any) -> Any:
            extra = regularizer(peft_model)
            base = self.loss(features, labels)
            return base if extra is None else base + extra

    return Regularized()


def _teacher(spec: Any, max_length: int, show_progress: bool) -> Any:
    if spec is None or spec in ("none", False):
        return None
    if isinstance(spec, str):
        from ..rerankers.cross_encoder import CrossEncoder

        return CrossEncoder(spec, max_length=max_length, show_progress=show_progress)
    return spec  # a CrossEncoder or a function (queries, docs) -> scores


def _stage(spec: str, dataset: Dataset, folder: str) -> Any:
    """Round-0 first stage: bm25, an index folder, a run file; None for the model itself."""
    if spec == "model":
        return None
    from .sources import negatives_stage

    return negatives_stage(spec, dataset, {"_dir": folder})


def train_retriever(dataset: Dataset, output_dir: PathLike, base_model: str = "minilm",
                    method: str = "lora", adapter_options: dict[str, Any] | None = None,
                    negatives: NegativesOptions | None = None, options: RetrieverTrainOptions | None = None,
                    qids: list[str] | None = None, teacher: Any = "default", min_grade: int = 1,
                    checkpoint_dir: PathLike | None = None, extra_manifest: dict[str, Any] | None = None,
                    config_folder: str = ".", cache_dir: PathLike | None = None,
                    ) -> RetrieverTrainResult:
    """Train a bi-encoder on ``dataset``'s judged (query, positive) pairs of ``qids``; save it at ``output_dir``.

    ``teacher``: ``"default"`` takes ``negatives.teacher`` (a cross-encoder
    name); or pass a CrossEncoder / a ``(queries, docs) -> scores`` function,
    a ``FalseNegativeGuard`` (its cached scores are reused across trainings),
    or None for no false-negative guard.
    """
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import SentenceTransformerDataCollator
    from transformers import set_seed

    from .adapters import get_adapter
    from .peft import count_parameters
    from .retriever_data import FalseNegativeGuard, build_examples
    from .retriever_mining import Miner, TableCollator, refresh_callback

    neg = negatives or NegativesOptions()
    opts = options or RetrieverTrainOptions()
    neg.check()
    opts.check()
    adapter = get_adapter(method)
    examples, report = build_examples(dataset, qids, min_grade)
    report.warn("retriever training data")
    if not examples:
        raise ConfigError("no training examples: no query has a judged positive in the corpus")
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    set_seed(opts.seed)
    model = load_model(base_model)
    window = model.max_seq_length  # the saved model keeps it: a shorter training window is for speed only
    if opts.max_seq_length:
        model.max_seq_length = int(opts.max_seq_length)
    from ..folders import model_fingerprint

    base_fingerprint = model_fingerprint(model)
    peft_model = wrap_adapter(model, method, adapter_options, opts.steps)
    trainable, total = count_parameters(model)

    miner = None
    if neg.mine_from != "none":
        spec = neg.teacher if teacher == "default" else teacher
        if isinstance(spec, FalseNegativeGuard):
            guard: FalseNegativeGuard | None = spec  # shared: its score cache spans trainings
        else:
            guard_teacher = _teacher(spec, neg.teacher_max_length, opts.show_progress)
            guard = FalseNegativeGuard(guard_teacher, neg.margin) if guard_teacher is not None else None
        miner = Miner(examples, dataset, neg, guard, _stage(neg.mine_from, dataset, config_folder),
                      opts.encode_batch_size, opts.show_progress, cache_dir)
        miner.round(model, 0)
    rows = HFDataset.from_dict({"anchor": [ex.query for ex in examples],
                                "positive": [dataset.corpus[ex.positive] for ex in examples],
                                "example": list(range(len(examples)))})
    prompts = _prompts(model, neg.num_negatives if miner else 0)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else Path(f"{output_dir}.checkpoints")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt), max_steps=opts.steps, per_device_train_batch_size=opts.batch_size,
        learning_rate=opts.lr, warmup_steps=int(opts.warmup_ratio * opts.steps),
        weight_decay=opts.weight_decay, max_grad_norm=opts.max_grad_norm, lr_scheduler_type="linear",
        seed=opts.seed, data_seed=opts.seed, bf16=opts.bf16, use_cpu=not torch.cuda.is_available(),
        logging_steps=opts.logging_steps, save_strategy="no", report_to=[],
        batch_sampler="no_duplicates", dataloader_num_workers=0, disable_tqdm=not opts.show_progress)
    base_collator = SentenceTransformerDataCollator(preprocess_fn=model.preprocess, prompts=prompts or {})
    collator = TableCollator(base_collator, miner.table if miner else None, dataset.corpus.__getitem__)
    callbacks = adapter.callbacks(peft_model) if peft_model is not None else []
    if miner is not None and neg.refresh_every:
        callbacks.append(refresh_callback(miner, model, neg.refresh_every))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows,
                                         loss=_loss(model, opts, adapter.regularizer, peft_model),
                                         data_collator=collator, callbacks=callbacks)
    t0 = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - t0
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    mining = miner.table.rounds if miner else []
    info = {"steps": int(out.global_step), "seconds": round(seconds, 1), "examples": len(examples),
            "skipped": report.skipped, "trainable_parameters": trainable, "total_parameters": total,
            "final_loss": losses[-1] if losses else None, "negatives": asdict(neg),
            "train": asdict(opts), "mining": mining, **(extra_manifest or {})}
    if isinstance(teacher, str) and teacher != "default":
        info["negatives"]["teacher"] = teacher
    elif teacher not in ("default", None):
        info["negatives"]["teacher"] = getattr(teacher, "name", None) or type(teacher).__name__
    model.eval()
    model.max_seq_length = window
    folder = on_main(save_retriever, model, output_dir, base_model, method, adapter_options, base_fingerprint,
                     training=info, default=Path(output_dir))  # one writer under several processes
    return RetrieverTrainResult(folder, method, int(out.global_step), seconds, trainable, total,
                                len(examples), losses, mining, {"skipped": report.skipped})


def _prompts(model: Any, num_negatives: int) -> dict[str, str]:
    """Column prompts for training: the model's own query / document prompts, when it has them."""
    prompts = model.prompts or {}
    query = prompts.get("query") or ""
    doc = next((prompts[n] for n in ("document", "passage", "corpus") if prompts.get(n)), "")
    out = {"anchor": query} if query else {}
    if doc:
        out["positive"] = doc
        out.update({f"negative_{j}": doc for j in range(1, num_negatives + 1)})
    return out


def save_retriever(model: Any, folder: PathLike, base_model: str, method: str,
                   options: dict[str, Any] | None, base_fingerprint: str,
                   training: dict[str, Any] | None = None) -> Path:
    """Write a trained retriever folder atomically (adapter files or a full model, and the manifest)."""
    from ..folders import model_fingerprint, write_manifest
    from ..retrievers.encoder import KIND_RETRIEVER, KIND_RETRIEVER_ADAPTER, backbone_attr

    net = getattr(model[0], backbone_attr(model))
    adapter = hasattr(net, "peft_config")
    manifest = {"kind": KIND_RETRIEVER_ADAPTER if adapter else KIND_RETRIEVER,
                "base_model": str(base_model), "method": method, "options": dict(options or {}),
                "max_seq_length": model.max_seq_length, "similarity": str(model.similarity_fn_name),
                "base_fingerprint": base_fingerprint, "model_fingerprint": model_fingerprint(model),
                "training": training or {}}
    with atomic_dir(folder) as tmp:
        if adapter:
            net.save_pretrained(str(tmp))
        else:
            model.save(str(tmp))
        write_manifest(tmp, manifest)
    return Path(folder)


def train_from_recipe(recipe: RetrieverRecipe, steps: int | None = None,
                      output_dir: str | None = None, threads: int | None = None,
                      show_progress: bool | None = None) -> RetrieverTrainResult:
    """Load the recipe's BEIR data, split off dev queries, and train (CLI overrides applied)."""
    import rankkit as rk

    from .data import split_queries
    from .sources import config_path

    cfg = {"_dir": recipe.folder}
    data = recipe.data
    path = config_path(cfg, data["path"])
    ds = rk.datasets.load_beir(path, split=data.get("split", "train"))
    train_q, dev_q = split_queries(list(ds.qrels), float(data.get("dev_fraction", 0.0)),
                                   int(data.get("seed", 0)))
    if data.get("limit_queries"):
        train_q = train_q[: int(data["limit_queries"])]
    opts = recipe.train
    if steps:
        opts.steps = int(steps)
    if threads:
        opts.threads = int(threads)
    if show_progress is not None:
        opts.show_progress = show_progress
    out = Path(output_dir).resolve() if output_dir else config_path(cfg, recipe.output_dir)
    ckpt = config_path(cfg, recipe.checkpoint_dir) if recipe.checkpoint_dir else None
    cache = config_path(cfg, data["cache_dir"]) if data.get("cache_dir") else None
    res = train_retriever(ds, out, recipe.base_model, recipe.method, recipe.adapter_options,
                          recipe.negatives, opts, qids=train_q, min_grade=int(data.get("min_grade", 1)),
                          checkpoint_dir=ckpt, config_folder=recipe.folder, cache_dir=cache,
                          extra_manifest={"data": {"path": str(data["path"]),
                                                   "split": data.get("split", "train"),
                                                   "train_queries": len(train_q),
                                                   "dev_qids": dev_q}})
    if recipe.index:     # encoded and written once, by the main process; the others wait for it
        index_dir = config_path(cfg, recipe.index["output_dir"])
        res.index = on_main(_build_index, ds.corpus, res.folder, recipe.index, opts.show_progress, index_dir,
                            default=index_dir)
    return res


def _build_index(corpus: Any, model: Path, index: dict[str, Any], show_progress: bool, out: Path) -> Path:
    """Encode ``corpus`` with the trained retriever and save the index at ``out``."""
    import rankkit as rk

    dense = rk.DenseRetriever.build(corpus, model=str(model), index=index.get("type", "flat"),
                                    show_progress=show_progress, **(index.get("options") or {}))
    return dense.save(out)
