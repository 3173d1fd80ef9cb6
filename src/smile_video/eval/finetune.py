"""Full finetuning with the VideoMAE recipe (paper Table 17), single process or DDP under torchrun.

Recipe: AdamW (lr = finetune.lr * global batch / 256), layer-wise lr decay, drop path, RandAugment on every frame
alike, random erasing (VideoMAE's reprob 0.25, pixel mode; not in Table 17), mixup / cutmix with label smoothing,
per-step linear warmup then cosine decay to finetune.min_lr, and multi-view testing (finetune.test_clips x test_crops
views per video, softmax scores averaged). With finetune.test_list set, the model after the last epoch is also
evaluated on that held-out list (results.json `test`); the recipe's epoch count is fixed, so nothing is chosen on it.
`finetune.head_epochs` > 0 runs LP-FT (Kumar et al., ICLR 2022): that many epochs first train only fc_norm and the
head on the frozen encoder (eval mode: no drop path; their own AdamW at the same lr, cosine over those epochs, no
warmup), then the full finetuning's `finetune.epochs` start from that head with their own warmup and schedule.
`finetune.centre_output` first moves the encoder's output by minus the training clips' mean pooled feature
(`centre_output`, a shift of the last block's MLP bias).

Data order: the dataset's own crop (multi-scale) and flip, then RandAugment, ImageNet normalisation, random
erasing, mixup / cutmix. (VideoMAE applies RandAugment before its random-resized crop; the order differs, the
ingredients do not.)
From `train.*` this uses: device, precision, clip_grad and log_every; the recipe itself is `finetune.*`.
`finetune.drop_path` sets the model's drop path.

Checkpoints and resume: after every epoch the main process writes `checkpoints/step_<step>/` atomically with the
engine's helpers (model.safetensors + config.json, a classifier any `smile` verb reads; training_state.pt: optimizer,
grad scaler, epoch, step, the evaluations so far), keeping the newest finetune.keep_checkpoints. `run.resume` (`smile
finetune --resume auto|PATH`) continues from one. No random state needs saving: every draw is a pure function of
(finetune.seed, epoch or step, rank) — dataset items of (seed, epoch, index), the epoch's permutation, one generator
per epoch and rank for RandAugment / erasing / mixup, and torch's global generator (drop path) reseeded every step —
so a resumed run equals the uninterrupted one (bitwise on CPU).

Writes config.yaml, metrics.jsonl (train steps, evaluations, resumes), results.json, checkpoints/ and
model.safetensors (the finetuned classifier) in the run directory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from ..config import FinetuneConfig, FinetuneJob, ModelConfig
from ..config.evaluation import check_list_files
from ..data.lists import require_files
from ..data.normalize import normalize
from ..devices import resolve_device
from ..engine.checkpoints import find_resume, load_training_state, save_checkpoint
from ..engine.distributed import DistInfo, all_reduce_mean, cleanup, init_distributed
from ..engine.optim import cosine_lr, scaled_lr, set_lr
from ..run_guard import claim_run_dir, format_changes, lock_for_resume, releases_run_dir, resume_changes, saved_config
from ..runlog import RunDir, atomic_write_bytes, atomic_write_text, truncate_metrics
from ..seeding import derive_seed
from .finetune_tasks import (
    describe,
    init_head,
    num_outputs,
    pad_targets,
    read_task_list,
    task_loss,
    task_metrics,
    train_targets,
    view_scores,
)
from .layer_decay import layer_decay_param_groups
from .linear_probe import confusion_matrix
from .mixup import mix_video_batch
from .video_augment import rand_augment_batch, random_erase_batch

__all__ = ["build_classifier", "finetune", "evaluate_views", "centre_output", "RESUME_SAFE_KEYS"]

# Keys a resume may change without changing the finetuned weights (logging, workers, checkpoints kept, evaluation
# cadence); any other change is refused on resume unless run.force_resume.
RESUME_SAFE_KEYS = ("run.*", "train.log_every", "finetune.num_workers", "finetune.keep_checkpoints",
                    "finetune.eval_every")


def build_classifier(model_cfg: ModelConfig, num_classes: int, checkpoint: str | None, drop_path: float,
                     seed: int = 0) -> tuple[nn.Module, ModelConfig]:
    """A VideoClassifier with the encoder weights of `checkpoint` (any format; `smile_video.checkpoint.init_classifier`
    checks that only fc_norm.* / head.* are missing) or, for checkpoint=None, a random init drawn under `seed`."""
    cfg = dataclasses.replace(model_cfg, drop_path=drop_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # fresh head / fc_norm (and a random-init encoder) do not depend on global state
        if checkpoint:
            from ..checkpoint import init_classifier

            model, cfg, _ = init_classifier(checkpoint, num_classes, cfg)
        else:
            from ..models import VideoClassifier

            model = VideoClassifier(cfg, num_classes)
    return model, cfg


def _shard(n: int, info: DistInfo, seed: int, epoch: int, per_rank: int, shuffle: bool) -> list[list[int]]:
    """This rank's batches of dataset indices for one epoch (train: shuffled, whole global batches only)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
        global_batch = per_rank * info.world_size
        order = order[: (n // global_batch) * global_batch]
        if not order:
            raise ValueError(f"the train list has {n} videos, fewer than one global batch ({global_batch})")
        mine = order[info.rank::info.world_size]
    else:
        mine = list(range(info.rank, n, info.world_size))
    return [mine[i:i + per_rank] for i in range(0, len(mine), per_rank)]


def _batches(dataset: Any, index_batches: list[list[int]], num_workers: int) -> Iterator[dict[str, Any]]:
    from torch.utils.data import DataLoader

    from ..data.dataset import collate

    yield from DataLoader(dataset, batch_sampler=index_batches, num_workers=num_workers, collate_fn=collate)


@torch.no_grad()
def evaluate_views(model: nn.Module, dataset: Any, num_classes: int, info: DistInfo, device: torch.device,
                   batch_size: int, dtype: torch.dtype | None, num_workers: int = 0, task: str = "classification",
                   targets: torch.Tensor | None = None, confusion: bool = False) -> dict[str, Any]:
    """Multi-view testing: the scores of every view of a video averaged (softmax / sigmoid / the count, by `task`;
    eval/finetune_tasks.py), then the task's metrics. `targets`: the dataset entries' targets (multi-hot (N, K) or
    counts (N,)); classification reads the labels from the batches. `num_classes`: the head's size. `confusion`
    (classification): also "confusion", the (K, K) counts as nested lists, row = true class, column = predicted."""
    model.eval()
    n = len(dataset)
    sums = torch.zeros(n, num_classes, dtype=torch.float64, device=device)  # summed view scores per dataset item
    counts = torch.zeros(n, dtype=torch.float64, device=device)
    labels = torch.full((n,), -1, dtype=torch.long, device=device)
    for batch in _batches(dataset, _shard(n, info, 0, 0, batch_size, shuffle=False), num_workers):
        video = batch["video"].to(device)  # (B * views, 3, T, H, W); the views of one entry share its index
        index = torch.as_tensor(batch["index"]).long().view(-1).to(device)
        label = torch.as_tensor(batch["label"]).long().view(-1).to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(normalize(video))  # (B, K)
        sums.index_add_(0, index, view_scores(task, logits).double())
        counts.index_add_(0, index, torch.ones_like(index, dtype=torch.float64))
        labels[index] = label
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(sums)
        dist.all_reduce(counts)
        dist.all_reduce(labels, op=dist.ReduceOp.MAX)  # -1 where a rank did not see the video
    seen = counts > 0
    if not seen.any():
        raise ValueError("evaluation produced no scores: every val item was skipped")
    scores = (sums[seen] / counts[seen, None]).float()
    if task == "classification":
        out: dict[str, Any] = task_metrics(task, scores, labels[seen], num_classes)
        if confusion:
            out["confusion"] = confusion_matrix(scores.argmax(dim=1), labels[seen], num_classes).tolist()
    else:
        if targets is None:
            raise ValueError(f"evaluate_views: task {task!r} needs the entries' targets")
        out = task_metrics(task, scores, targets.to(device)[seen], num_classes)
    out["num_videos"] = int(seen.sum())
    return out


def _precision(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _eval_due(epochs_done: int, f: FinetuneConfig) -> bool:
    """Whether the multi-view evaluation runs after `epochs_done` epochs (head-only epochs included): after the last,
    and every eval_every."""
    return epochs_done == f.head_epochs + f.epochs or bool(f.eval_every and epochs_done % f.eval_every == 0)


def _head_step(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """LP-FT's head-only forward: the encoder's pooled tokens without autograd, then fc_norm and head -> logits."""
    with torch.no_grad():
        pooled = model.forward_tokens(x).mean(dim=1)  # (B, C)
    return model.head(model.head_dropout(model.fc_norm(pooled)))  # (B, K)


@torch.no_grad()
def centre_output(model: nn.Module, dataset: Any, info: DistInfo, device: torch.device, batch_size: int,
                  num_workers: int = 0) -> torch.Tensor:
    """Subtract the mean pooled feature of `dataset`'s clips (every rank's share, averaged) from the last block's
    MLP output bias in place: every output token, hence the pooled feature fc_norm reads, moves by minus that mean.
    Returns the mean (C,) that was removed."""
    model.eval()
    total = torch.zeros(model.fc_norm.normalized_shape[0], dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for batch in _batches(dataset, _shard(len(dataset), info, 0, 0, batch_size, shuffle=False), num_workers):
        pooled = model.forward_tokens(normalize(batch["video"].to(device))).mean(dim=1)  # (B, C)
        total += pooled.double().sum(dim=0)
        count += pooled.shape[0]
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(total)
        dist.all_reduce(count)
    if not count > 0:
        raise ValueError("finetune.centre_output: no training clip could be decoded")
    mean = (total / count).float()
    model.blocks[-1].mlp.fc2.bias.sub_(mean.to(model.blocks[-1].mlp.fc2.bias.dtype))
    return mean.cpu()


def _average_grads(params: list[nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of `params` over the ranks (the head-only epochs bypass DDP's own reduction)."""
    if info.enabled:
        import torch.distributed as dist

        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(info.world_size)


def _restore(path: Path, model: nn.Module, optimizer_for: Callable[[int], torch.optim.Optimizer],
             scaler: torch.amp.GradScaler, expected: dict[str, int]) -> dict[str, Any]:
    """Load a per-epoch checkpoint (a `step_*` directory or its training_state.pt) into model, optimizer and scaler in
    place; returns its training state. `optimizer_for(epochs_done)`: the optimizer the next epoch steps (the
    head-only one during LP-FT's first epochs). Every failure names the file and what was expected."""
    folder = path if path.is_dir() else path.parent
    state = load_training_state(path)  # FileNotFoundError / ValueError naming the file
    state_file = folder / "training_state.pt" if path.is_dir() else path
    missing = [k for k in ("epoch", "step", "optimizer", "evaluations", *expected) if k not in state]
    if missing:
        raise ValueError(f"{str(state_file)!r} is not a finetuning checkpoint (no {missing}); a pretraining "
                         "checkpoint cannot resume `smile finetune`")
    for key, value in expected.items():
        if int(state[key]) != value:
            raise ValueError(f"checkpoint {str(folder)!r} has {key}={state[key]}, this run {value}: resume with the "
                             "lists, finetune.batch_size and number of processes it was written with")
    weights_file = folder / "model.safetensors"
    try:
        model.load_state_dict(load_file(str(weights_file)))
    except Exception as e:  # missing, truncated, or weights of another model
        raise ValueError(f"checkpoint weights {str(weights_file)!r} are missing, unreadable or do not fit the "
                         f"model: {e}") from e
    optimizer_for(int(state["epoch"])).load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return state


@releases_run_dir  # the run directory is locked against other processes until this returns
def finetune(cfg: FinetuneJob, checkpoint: str | None) -> dict[str, Any]:
    """Finetune the encoder of `checkpoint` (None: random init) on finetune.train_list; returns results.json.

    `cfg.run.resume` ("auto" or a checkpoint path) continues a run from its per-epoch checkpoint."""
    from ..data.dataset import VideoClipDataset

    f = cfg.finetune
    device = resolve_device(cfg.train.device)
    info = init_distributed(device.type)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    try:
        check_list_files("finetune", f)  # before any work; errors name the key
        lock_for_resume(cfg.run.out_dir, cfg.run.resume, info.is_main)
        resume_from = find_resume(cfg.run.out_dir, cfg.run.resume)  # before any work: a missing PATH fails here
        # targets: labels (N,), multi-hot (N, K) or counts (N,) by finetune.task (eval/finetune_tasks.py)
        train_entries, train_t = read_task_list(f.task, f.train_list, f.data_root, f.num_classes)
        val_entries, val_t = read_task_list(f.task, f.val_list, f.data_root, f.num_classes)
        test_entries, test_t = (read_task_list(f.task, f.test_list, f.data_root, f.num_classes) if f.test_list
                                else ([], None))
        for key, entries in (("train_list", train_entries), ("val_list", val_entries), ("test_list", test_entries)):
            require_files(entries, getattr(f, key), f.data_root, "finetune.data_root")  # the files are there
        claim_run_dir(cfg.run.out_dir, resume=bool(cfg.run.resume), overwrite=cfg.run.overwrite,
                      resumable=resume_from is not None, is_main=info.is_main)  # one run per directory
        run = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet, is_main=info.is_main)
        run.echo(f"finetune {checkpoint or 'random init'} on {f.train_list} -> {run.path}")  # encoder, task, run
        num_classes = num_outputs(f.task, [t for t in (train_t, val_t, test_t) if t is not None], f.num_classes)
        train_t, val_t = pad_targets(f.task, train_t, num_classes), pad_targets(f.task, val_t, num_classes)
        test_t = None if test_t is None else pad_targets(f.task, test_t, num_classes)
        model, cfg.model = build_classifier(cfg.model, num_classes, checkpoint, f.drop_path, f.seed)
        init_head(f.task, model, train_t)  # counting: bias = mean train count (a resume overwrites it)
        changes = [] if resume_from is None else resume_changes(saved_config(run.path, resume_from), cfg,
                                                                RESUME_SAFE_KEYS, cfg.run.force_resume)
        run.save_config(cfg)
        m = cfg.model
        train_ds = VideoClipDataset(train_entries, num_frames=m.num_frames, sampling_rate=f.sampling_rate,
                                    size=m.img_size, train=True, flip=f.flip, seed=f.seed + info.rank,
                                    cache_frames=f.cache_frames)

        def eval_set(entries: list) -> VideoClipDataset:
            return VideoClipDataset(entries, num_frames=m.num_frames, sampling_rate=f.sampling_rate, size=m.img_size,
                                    train=False, test_views=(f.test_clips, f.test_crops))

        val_ds = eval_set(val_entries)
        test_ds = eval_set(test_entries) if test_entries else None
        if f.batch_size % info.world_size:
            raise ValueError(f"finetune.batch_size={f.batch_size} is not divisible by the {info.world_size} ranks")
        per_rank = f.batch_size // info.world_size
        steps_per_epoch = len(_shard(len(train_ds), info, f.seed, 0, per_rank, shuffle=True))
        total, warmup = steps_per_epoch * f.epochs, int(round(f.warmup_epochs * steps_per_epoch))
        head_total = steps_per_epoch * f.head_epochs  # LP-FT's head-only steps, before the `total` full ones
        model.to(device)
        if f.centre_output and resume_from is None:  # a resume loads weights that already carry the shift
            centre = centre_output(model, eval_set(train_entries), info, device, per_rank, f.num_workers)
            run.echo(f"centre_output: removed the training clips' mean pooled feature (norm {centre.norm():.3g})")
            run.log({"kind": "centre_output", "norm": float(centre.norm())})
        groups = layer_decay_param_groups(model, f.weight_decay, f.layer_decay, m.depth)
        for g in groups:
            g.pop("names")
        peak = scaled_lr(f.lr, f.batch_size)
        opt = torch.optim.AdamW(groups, lr=peak, betas=tuple(f.betas))
        head_params = [*model.fc_norm.parameters(), *model.head.parameters()]
        head_ids = {id(p) for p in head_params}
        # the head-only epochs' optimizer: fc_norm and head, with their groups' weight decay (no layer decay there)
        head_opt = torch.optim.AdamW([{**g, "params": [p for p in g["params"] if id(p) in head_ids]}
                                      for g in groups if any(id(p) in head_ids for p in g["params"])],
                                     lr=peak, betas=tuple(f.betas))

        def optimizer_for(epochs_done: int) -> torch.optim.Optimizer:
            return head_opt if epochs_done < f.head_epochs else opt
        dtype = _precision(cfg.train.precision, device)
        scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)
        start_epoch, step, evals = 0, 0, []
        if resume_from is not None:
            state = _restore(resume_from, model, optimizer_for, scaler,
                             {"num_classes": num_classes, "steps_per_epoch": steps_per_epoch})
            start_epoch, step, evals = int(state["epoch"]), int(state["step"]), list(state["evaluations"])
            if info.is_main:  # records written after this checkpoint are redone: drop them
                truncate_metrics(run.file("metrics.jsonl"), step)
            run.echo(f"resumed from {resume_from} after epoch {start_epoch} (step {step})")
            run.log({"kind": "resume", "epoch": start_epoch, "step": step, "from": str(resume_from)})
            if changes:
                run.echo(f"resume: config changed: {format_changes(changes)}")
                run.log({"kind": "config_change", "step": step, "changes": {k: [a, b] for k, a, b in changes}})
        elif cfg.run.resume:
            run.echo("resume: no checkpoint found, starting from scratch")
        ddp = model
        if info.enabled:  # after the resume: DDP broadcasts rank 0's weights when wrapping
            ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                      else None)

        def evaluate(epochs_done: int) -> None:
            metrics = evaluate_views(model, val_ds, num_classes, info, device, per_rank, dtype, f.num_workers,
                                     f.task, val_t)
            run.log({"kind": "eval", "epoch": epochs_done, **metrics})
            run.echo(f"epoch {epochs_done}: {describe(f.task, metrics)} ({f.test_clips}x{f.test_crops} views)")
            evals.append({"epoch": epochs_done, **metrics})

        # The checkpoint of an epoch is written before its evaluation: a resume redoes an evaluation that was due
        # but is not in the checkpoint.
        if start_epoch and _eval_due(start_epoch, f) and all(e["epoch"] != start_epoch for e in evals):
            evaluate(start_epoch)
        mixing = f.mixup > 0 or f.cutmix > 0
        bar = run.progress(total=head_total + total, desc="finetune", initial=step)
        for epoch in range(start_epoch, f.head_epochs + f.epochs):
            head_only = epoch < f.head_epochs
            step_opt = optimizer_for(epoch)
            ddp.train(not head_only)  # head-only: the frozen encoder in eval mode, without drop path
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            g = torch.Generator().manual_seed((f.seed * 1_000_003 + epoch) * 4096 + info.rank)  # rank-offset draws
            for batch in _batches(train_ds, _shard(len(train_ds), info, f.seed, epoch, per_rank, True),
                                  f.num_workers):
                torch.manual_seed(derive_seed(f.seed, step, info.rank))  # drop path's draws: a function of the step
                video = rand_augment_batch(batch["video"], g, f.randaug_n, f.randaug_m, f.randaug_mstd)
                x = normalize(video.to(device))  # (B, 3, T, H, W)
                x = random_erase_batch(x, g, f.reprob)  # (B, 3, T, H, W); reprob = 0: x itself
                index = torch.as_tensor(batch["index"]).long().view(-1)  # the entries actually decoded
                # (B, K) smoothed one-hot / multi-hot, or (B,) counts
                target = train_targets(f.task, train_t, index, num_classes, f.label_smoothing).to(device)
                if mixing and x.shape[0] % 2 == 0:
                    x, target = mix_video_batch(x, None, num_classes, g, f.mixup, f.cutmix, targets=target)
                lr = (cosine_lr(step, head_total, 0, peak, f.min_lr) if head_only
                      else cosine_lr(step - head_total, total, warmup, peak, f.min_lr))
                set_lr(step_opt, lr)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = _head_step(model, x) if head_only else ddp(x)  # (B, K)
                loss = task_loss(f.task, logits, target)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"finetune: non-finite loss {loss.item()} at step {step} (epoch {epoch}); "
                                             f"the last good checkpoint is in {run.file('checkpoints')}")
                step_opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if head_only:
                    _average_grads(head_params, info)
                if cfg.train.clip_grad > 0:
                    scaler.unscale_(step_opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
                scaler.step(step_opt)
                scaler.update()
                step += 1
                bar.update(1)
                if step % max(1, cfg.train.log_every) == 0 or step == head_total + total:
                    run.log({"kind": "train", "step": step, "epoch": epoch, "lr": lr, "head_only": head_only,
                             "loss": all_reduce_mean(loss.detach().float(), info).item()})
            if info.is_main:
                state = {"epoch": epoch + 1, "step": step, "steps_per_epoch": steps_per_epoch,
                         "num_classes": num_classes, "optimizer": optimizer_for(epoch + 1).state_dict(),
                         "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "evaluations": evals}
                save_checkpoint(run.path, step, model, m, {"source": "finetune", "epoch": epoch + 1, "step": step},
                                state, f.keep_checkpoints)
            if _eval_due(epoch + 1, f):
                evaluate(epoch + 1)
        bar.close()
        results = {"encoder": checkpoint or "random init", "num_classes": num_classes, "steps": step,
                   "final": evals[-1], "evaluations": evals, "world_size": info.world_size}
        if test_ds is not None:  # the final epoch's model on the held-out list: reported, never chosen on
            last = f.head_epochs + f.epochs
            test = {"epoch": last, **evaluate_views(model, test_ds, num_classes, info, device, per_rank, dtype,
                                                    f.num_workers, f.task, test_t, confusion=True)}
            run.log({"kind": "test", **test})
            run.echo(f"test (epoch {last}): {describe(f.task, test)} ({f.test_clips}x{f.test_crops} views)")
            results["test"] = test
        if info.is_main:
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            atomic_write_bytes(run.file("model.safetensors"), save(state, metadata={"num_classes": str(num_classes)}))
            atomic_write_text(run.file("results.json"), json.dumps(results, indent=1))
        return results
    finally:
        cleanup(info)
