"""`smile pretext RUN`: does a pretraining run's student use motion? (`eval/pretext.py`, docs/fidelity.md)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = ("student", "shuffled", "position_mean", "objectness_oracle", "neighbour_oracle", "zero")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a `smile pretrain` run directory (its config.yaml and model)")
    parser.add_argument("--checkpoint", default=None, metavar="CKPT",
                        help="a pretraining checkpoint directory to use instead of RUN/model (e.g. RUN/checkpoints/"
                             "step_00000400)")
    parser.add_argument("--clips", type=int, default=64, help="fresh synthetic clips (default 64)")
    parser.add_argument("--seed", type=int, default=12345, help="the clips' seed (default 12345)")
    parser.add_argument("--readout", type=int, default=0, metavar="N",
                        help="also the motion readout on N clips of one object and their time reversals: how much "
                             "of the object's position and of its direction of motion the encoder's pooled tokens "
                             "carry (eval/motion_readout.py; 512 in docs/fidelity.md section 24; default 0: off)")
    parser.add_argument("--readout-monotonic", action="store_true",
                        help="the readout's clips turn and grow at constant speed, one way (their net rotation and "
                             "scale change are then a sense of motion the frames show; docs/fidelity.md section 25 A)")
    parser.add_argument("--out", default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="change the run's config for the check (e.g. data.background=black)")


def format_report(rep: dict) -> str:
    lines = [f"{'masked-token MSE':<20}{'all':>10}{'object':>10}{'background':>12}"]
    for row in ROWS:
        r = rep[row]
        lines.append(f"{row:<20}{r['all']:>10.4f}{r['object']:>10.4f}{r['background']:>12.4f}")
    p = rep["shuffle_penalty"]
    lines.append(f"{'shuffle penalty':<20}{p['all']:>+10.4f}{p['object']:>+10.4f}{p['background']:>+12.4f}")
    t = rep["targets"]
    lines.append(f"targets: object energy {t['object_energy']:.3f}, background {t['background_energy']:.3f}, "
                 f"position R^2 {t['position_r2']:.3f}, object share of masked tokens {t['object_share']:.3f}")
    if "encoder_target_r2" in rep:
        r = rep["encoder_target_r2"]
        lines.append(f"encoder tokens -> targets R^2 (every token visible): student {r['student']:.3f}, random init "
                     f"{r['random_init']:.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..config import PretrainJob, load_config
    from ..eval.pretext import checkpoint_pretext_report

    run_dir = Path(args.run)
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a pretraining run directory: no config.yaml")
    ckpt = Path(args.checkpoint) if args.checkpoint else run_dir / "model"
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"no pretraining model at {str(ckpt)!r} (a finished run writes RUN/model; give "
                                "--checkpoint RUN/checkpoints/step_N for an unfinished one)")
    if args.clips < 2:
        raise ValueError("--clips must be >= 2")
    if args.readout < 0:
        raise ValueError("--readout must be >= 0")
    if args.readout_monotonic and not args.readout:
        raise ValueError("--readout-monotonic needs --readout N")
    cfg = load_config(PretrainJob, [str(config)], args.overrides)
    rep = checkpoint_pretext_report(ckpt, cfg, clips=args.clips, seed=args.seed, readout_clips=args.readout,
                                    readout_monotonic=args.readout_monotonic)
    print(format_report(rep))
    if args.readout:
        from ..eval.motion_readout import format_readout

        print(format_readout(rep["motion_readout"]))
    if args.out:
        from ..runlog import atomic_write_text

        atomic_write_text(Path(args.out), json.dumps(rep, indent=1))
    return 0
