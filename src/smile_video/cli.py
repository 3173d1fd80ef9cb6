"""The `smile` command line: parse, dispatch, nothing more.

Each verb lives in ``smile_video.commands.<module>`` and exposes ``add_arguments(parser)`` and ``run(args) -> int``.
The table below is the whole CLI; a verb whose module does not exist yet says so and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from . import __version__
from .commands._config import ConfigPrinted
from .config import ConfigError
from .errors import JobError


@dataclass(frozen=True)
class Verb:
    name: str
    module: str
    summary: str
    description: str
    issue: int


VERBS: tuple[Verb, ...] = (
    Verb("pretrain", "pretrain", "pretrain a student (single / mixed / progressive; torchrun for DDP)",
         "Masked video pretraining with motion infusion and teacher-feature targets. Configure with YAML files "
         "(--config) and section.key=value overrides, e.g. `smile pretrain -c configs/pretrain/k400_vit_b.yaml "
         "data.train_list=k400_train.csv`. Scale out with `torchrun --nproc_per_node=N -m smile_video pretrain ...`.",
         6),
    Verb("probe", "probe", "linear (Table 16) or attentive probing of a frozen encoder on cached features",
         "Extract features once with the frozen encoder, then train linear heads (several learning rates at "
         "once) and report top-1, top-5 and mean per-class accuracy. probe.head=attentive caches every output "
         "token and trains V-JEPA's attentive probe (a learned query cross-attending over them) instead.", 7),
    Verb("knn", "knn", "k-nearest-neighbour classification on cached encoder features",
         "Cosine kNN on the same cached features the linear probe uses.", 7),
    Verb("diagnose", "diagnose", "representation diagnostics: constant share, effective rank, temporal variation, "
         "attention entropy",
         "Encode one centre clip of up to --max-clips videos of a list and report how much of the output is one "
         "constant vector, its effective rank, where its variance lies (clips / time / space) and the raw and "
         "centred frame similarity, and each block's attention entropy; --compare-random adds a random init of the "
         "same config. See "
         "docs/evaluation.md.", 7),
    Verb("finetune", "finetune", "full finetuning with the VideoMAE recipe (Table 17)",
         "Layer-wise lr decay, drop path, RandAugment, mixup/cutmix, label smoothing, multi-view testing; "
         "DDP under torchrun.", 7),
    Verb("extract", "extract", "encoder features for a list of videos",
         "Mean-pooled (optionally per-token) encoder features from any supported checkpoint format.", 4),
    Verb("pretext", "pretext", "does a pretraining run use motion? masked loss on objects vs background, time-shuffled",
         "On fresh clips built as the run's config builds them: the student's masked-token loss on object and "
         "background tokens, the same with the clip shuffled in time, and predictors that never look at the clip "
         "(zero, per-position mean, an objectness oracle). See docs/fidelity.md.", 12),
    Verb("show-motion", "show_motion", "render synthetic object motion as a GIF and a filmstrip (Fig. 3)",
         "Paste objects from the bank along smoothed random trajectories over a background or a video and "
         "write an animated GIF and a PNG filmstrip.", 3),
    Verb("objects", "objects", "build or inspect an object bank (RGBA sprites)",
         "`smile objects build SRC --out BANK` decodes a folder of RGBA images once into a cache file; "
         "`smile objects info BANK` describes one.", 3),
    Verb("data-check", "data_check", "check a video list: undecodable files, frame counts, label map",
         "Decode every entry of a list and report what would be skipped during training.", 6),
    Verb("data-reencode", "data_reencode", "re-encode a video list for fast reads: short side 320, short GOPs",
         "Re-encode every video of a list once (H.264, short side 320, a keyframe every 16 frames; frame indices "
         "unchanged) and write the new list. Clips then decode without a long keyframe lead-in; see docs/data.md "
         "and docs/benchmarks.md for the gain and the size cost.", 13),
    Verb("data", "data", "seeded list subsets: low-shot (SEVERE), the fixed-budget data-scale study (Fig. 5)",
         "`smile data subset LIST --total 1000 --seed 0 --out SUB` (class-balanced) or `--fraction F` "
         "(stratified); `smile data budget LIST --out DIR --config BASE` writes the 12.5/25/50/100% lists and "
         "pretraining overlays with the epochs scaled to a fixed number of iterations.", 14),
    Verb("vos", "vos", "unsupervised video object segmentation: k-means on frozen patch features, Hungarian, mIoU",
         "SIGMA's protocol (Table 10): per video, k-means on the frozen encoder's space-time patch features "
         "(K = objects + background, and an overclustering K), clusters matched to the masks by the Hungarian "
         "algorithm, mIoU. DAVIS-2017 and YouTube-VOS folder layouts; `--generate DIR` writes a small "
         "DAVIS-layout set with exact masks from the motion compositor. See docs/evaluation.md.", 14),
    Verb("tad-features", "tad_features", "sliding-window features per video for temporal action localisation",
         "One (T, C) float32 .npy per video in the layout OpenTAD / ActionFormer read: window of 16 frames, "
         "configurable stride (Table 10: THUMOS-14, ActivityNet-1.3). See docs/evaluation.md.", 14),
    Verb("export", "export", "export a checkpoint (e.g. to a Hugging Face VideoMAE directory)",
         "`smile export hf CKPT OUT` writes config.json + safetensors that transformers loads.", 4),
    Verb("verify", "verify", "check checkpoints against their manifests (each file's size and sha256)",
         "A run directory (every checkpoints/step_* and model/) or a checkpoint directory: intact, damaged (which "
         "file) or without a manifest. Exit status 1 when one is damaged. `--resume auto` already passes over a "
         "damaged checkpoint; this says so before a copy or a long job relies on one.", 15),
    Verb("bench", "bench", "run the speed benchmarks (motion infusion, train step)",
         "Runs the scripts under benchmarks/ and prints medians; see docs/benchmarks.md.", 6),
    Verb("demo", "demo", "the main job: pretrain on synthetic video and evaluate it, from nothing",
         "Build the default object bank, pretrain the tiny student on dead leaves + motion with the embedded teacher, "
         "linear-probe it against a random init on the embedded benchmark, and write a report.", 7),
)


class _Broken:
    """A verb whose module cannot be imported (a dependency is missing): its help says so, running it fails clearly,
    and every other verb still works."""

    def __init__(self, error: ImportError) -> None:
        self.error = error

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace) -> int:
        print(f"smile {args._verb.name}: cannot run: {self.error} (reinstall with `pip install -e .`)",
              file=sys.stderr)
        return 1


def _load(verb: Verb):
    """The verb's module, None when it does not exist yet, or a `_Broken` stand-in when an import inside it fails."""
    name = f"smile_video.commands.{verb.module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        return _Broken(e)
    except ImportError as e:
        return _Broken(e)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smile",
        description="SMILE: masked video learning with spatial and motion semantics (CVPR 2025).",
        epilog="Run `smile VERB --help` for the options of each verb.",
    )
    parser.add_argument("--version", action="version", version=f"smile-video {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        module = _load(verb)
        description = verb.description
        if module is None:
            description += f"\n\nNot implemented yet (tracked in issue #{verb.issue}): running it exits with an error."
        p = sub.add_parser(verb.name, help=verb.summary, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(_verb=verb, _module=module, _parser=p)
        if module is not None:
            module.add_arguments(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse flags and ``section.key=value`` overrides in any order: argparse takes one run of positionals, so the
    overrides that follow a flag come back unparsed and are appended to `overrides`, in command-line order."""
    args, rest = parser.parse_known_args(argv)
    unknown = []
    for item in rest:
        if hasattr(args, "overrides") and "=" in item and not item.startswith("-"):
            args.overrides = [*(args.overrides or []), item]
        else:
            unknown.append(item)
    if unknown:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _message(e: BaseException) -> str:
    """An error's own message; one re-raised from a DataLoader worker carries the worker's traceback before it
    ("Caught X in DataLoader worker process 0. Original Traceback ... module.X: message"): keep the message."""
    text = str(e)
    marker = f"{type(e).__module__}.{type(e).__qualname__}: "
    if "Original Traceback" in text and marker in text:
        return text.split(marker, 1)[1]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    verb: Verb = args._verb
    if args._module is None:
        print(f"smile {verb.name}: not implemented yet (tracked in issue #{verb.issue}).", file=sys.stderr)
        return 2
    try:
        return int(args._module.run(args) or 0)
    except ConfigPrinted:
        return 0
    except ConfigError as e:
        print(f"smile {verb.name}: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, JobError) as e:
        print(f"smile {verb.name}: error: {_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"smile {verb.name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
