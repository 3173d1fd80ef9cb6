"""Time of one full-finetuning training step, fp32 against bf16 autocast, measured in the same run.

The step is `smile finetune`'s: a `VideoClassifier` (mean pooling, fc_norm, linear head) at the recipe's drop path,
cross-entropy, backward, AdamW over VideoMAE's layer-decay groups. `finetune.*` configs pick the precision with
`train.precision` (auto = fp32 on the CPU, bf16 on CUDA); on a CPU with AMX, bf16 autocast runs the matmuls on the
tile unit. Precisions are measured in interleaved rounds (each round times every precision once), so a noisy machine
hits them alike; the median per precision and the ratio to fp32 are printed.

    python benchmarks/finetune_step.py                                   # the study's tiny student (8-px patches)
    python benchmarks/finetune_step.py --set model.patch_size=4           # 1,024 tokens
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from smile_video.config import FinetuneJob, load_config
from smile_video.eval.finetune import build_classifier
from smile_video.eval.layer_decay import layer_decay_param_groups

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def has_amx() -> bool:
    """Whether the CPU advertises AMX bf16 tiles (Linux /proc/cpuinfo; False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return "amx_bf16" in fh.read()
    except OSError:
        return False


def build(overrides: list[str], batch: int, num_classes: int = 8):
    """One finetuning step's pieces on the CPU -> step(dtype) that runs a step under that autocast dtype."""
    cfg = load_config(FinetuneJob, overrides=["model.preset=tiny", *overrides])
    f, m = cfg.finetune, cfg.model
    model, m = build_classifier(m, num_classes, None, f.drop_path, seed=0)
    groups = layer_decay_param_groups(model, f.weight_decay, f.layer_decay, m.depth)
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=tuple(f.betas))  # as `smile finetune` builds it
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, m.num_frames, m.img_size, m.img_size, generator=gen)  # (B, 3, T, H, W)
    y = torch.randint(0, num_classes, (batch,), generator=gen)
    model.train()

    def step(dtype: torch.dtype | None) -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)  # (B, K)
        loss = torch.nn.functional.cross_entropy(logits.float(), y, label_smoothing=f.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return cfg, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="clips per step (the study's finetuning batch)")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds; each times every precision once")
    parser.add_argument("--set", nargs="*", default=["model.patch_size=8"], metavar="KEY=VALUE",
                        help="config overrides after model.preset=tiny (default: the study's 8-px patches)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    cfg, step = build(args.set, args.batch)
    m = cfg.model
    for dtype in PRECISIONS.values():  # warm-up: first-call allocations and oneDNN primitive creation
        step(dtype)
    times: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for _ in range(args.rounds):
        for name, dtype in PRECISIONS.items():
            t0 = time.perf_counter()
            step(dtype)
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    tokens, amx = m.num_tokens, has_amx()
    print(f"CPU x{torch.get_num_threads()} threads, AMX bf16 {'yes' if amx else 'no'}; "
          f"{m.preset} ({m.embed_dim}-d, depth {m.depth}), {tokens} tokens, batch {args.batch}")
    for name, t in med.items():
        print(f"{name}: step {t * 1e3:7.1f} ms (median of {args.rounds}), {args.batch / t:6.1f} clips/s, "
              f"{med['fp32'] / t:.2f}x fp32's rate")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": torch.get_num_threads(), "amx_bf16": amx,
                       "overrides": args.set, "batch": args.batch, "tokens": tokens,
                       "step_s_median": med, "times": times}, fh, indent=2)


if __name__ == "__main__":
    main()
