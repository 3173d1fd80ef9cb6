"""`smile show-motion`: paste bank objects along random trajectories and write an animated GIF and a PNG filmstrip
(like the paper's Fig. 3), so a person can look at what motion infusion does."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ..motion.backgrounds import BACKGROUNDS
from ._config import add_config_arguments, resolve

_TINTS = torch.tensor([[230, 60, 60], [60, 200, 80], [70, 110, 240], [240, 200, 40], [200, 80, 220]])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)  # motion.* and data.background overrides, e.g. motion.trajectory=official
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write motion.gif and filmstrip.png")
    parser.add_argument("--background", default=None, choices=BACKGROUNDS,
                        help="what the objects move over (default: data.background, or video with --video)")
    parser.add_argument("--video", default=None, metavar="PATH", help="a natural video for frame / video")
    parser.add_argument("--bank", default=None, metavar="BANK", help="bank file (default: motion.bank)")
    parser.add_argument("--clips", type=int, default=4, help="how many clips to render (4)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (16)")
    parser.add_argument("--size", type=int, default=224, help="frame size in pixels (224)")
    parser.add_argument("--stride", type=int, default=2, help="temporal stride when reading --video (2)")
    parser.add_argument("--strip-frames", type=int, default=8, help="frames per filmstrip row (8)")
    parser.add_argument("--fps", type=float, default=8.0, help="GIF frame rate (8)")
    parser.add_argument("--seed", type=int, default=0)


def _read_video(path: str, clips: int, frames: int, size: int, stride: int) -> torch.Tensor:
    """`clips` consecutive clips of `frames` frames from one video: (clips, 3, T, size, size) uint8."""
    from ..data.decode import open_video

    with open_video(path) as reader:
        total = reader.num_frames
        span = frames * clips * stride
        step = stride if span <= total else max(total / (frames * clips), 1e-9)
        idx = [min(int(i * step), total - 1) for i in range(frames * clips)]
        x = reader.get_frames(idx)  # (N, H, W, 3)
    x = x.permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    f = size / min(x.shape[-2:])
    h, w = max(size, round(x.shape[-2] * f)), max(size, round(x.shape[-1] * f))
    x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (h - size) // 2, (w - size) // 2
    x = x[..., top:top + size, left:left + size].round_().clamp_(0, 255).to(torch.uint8)
    return x.view(clips, frames, 3, size, size).transpose(1, 2).contiguous()


def render(video: torch.Tensor, alpha, strip_frames: int) -> tuple[list[Image.Image], Image.Image]:
    """GIF frames (clips side by side) and a filmstrip: per clip a row of frames and a row of tinted object alpha,
    labelled on the right, with a colour key of the objects below.

    video: (B, 3, T, H, W) uint8; alpha: (B, K, T, H, W) float, or the `ObjectAlpha` motion infusion returns.
    """
    b, _, t, h, w = video.shape
    if not isinstance(alpha, torch.Tensor):
        alpha = alpha.dense()  # ObjectAlpha -> (B, K, T, H, W) float
    gap = 4
    gif = []
    for i in range(t):
        row = torch.full((3, h, b * (w + gap) - gap), 255, dtype=torch.uint8)
        for j in range(b):
            row[:, :, j * (w + gap):j * (w + gap) + w] = video[j, :, i]
        gif.append(Image.fromarray(row.permute(1, 2, 0).numpy()))
    cols = torch.linspace(0, t - 1, min(strip_frames, t)).round().long().tolist()
    k = alpha.shape[1]
    tint = _TINTS[torch.arange(k) % len(_TINTS)].float()  # (K, 3)
    # (B, K, T, H, W) -> (B, 3, T, H, W): each object's alpha in its own colour over black
    colour = torch.einsum("bkthw,kc->bcthw", alpha.cpu(), tint).clamp(0, 255).to(torch.uint8) if k else \
        torch.zeros_like(video)
    strip = torch.full((3, 2 * b * (h + gap) - gap, len(cols) * (w + gap) - gap), 255, dtype=torch.uint8)
    for j in range(b):
        for c, i in enumerate(cols):
            x0 = c * (w + gap)
            strip[:, 2 * j * (h + gap):2 * j * (h + gap) + h, x0:x0 + w] = video[j, :, i]
            strip[:, (2 * j + 1) * (h + gap):(2 * j + 1) * (h + gap) + h, x0:x0 + w] = colour[j, :, i]
    return gif, _legend(Image.fromarray(strip.permute(1, 2, 0).numpy()), b, h, gap, k)


LABEL_WIDTH, LEGEND_HEIGHT = 64, 16  # the filmstrip's right-hand row labels and bottom colour key, in pixels


def _legend(strip: Image.Image, clips: int, h: int, gap: int, objects: int) -> Image.Image:
    """The filmstrip (kept at the top left) with a label on the right of every row ("clip j": its frames,
    "objects": the per-object alpha) and, below, which colour is which object."""
    from PIL import ImageDraw

    out = Image.new("RGB", (strip.width + LABEL_WIDTH, strip.height + LEGEND_HEIGHT), (255, 255, 255))
    out.paste(strip, (0, 0))
    draw = ImageDraw.Draw(out)
    x = strip.width + 4
    for j in range(clips):
        draw.text((x, 2 * j * (h + gap) + h // 2 - 5), f"clip {j + 1}", fill=(0, 0, 0))
        draw.text((x, (2 * j + 1) * (h + gap) + h // 2 - 5), "objects", fill=(0, 0, 0))
    y = strip.height + 3
    for i in range(objects):
        x0 = 2 + i * 70
        draw.rectangle((x0, y, x0 + 9, y + 9), fill=tuple(_TINTS[i % len(_TINTS)].tolist()))
        draw.text((x0 + 13, y - 1), f"object {i + 1}", fill=(0, 0, 0))
    return out


def run(args: argparse.Namespace) -> int:
    from ..config import PretrainJob
    from ..motion import infuse_motion
    from ..motion.backgrounds import make_background
    from ..objects import load_bank

    extra = []
    background = args.background or ("video" if args.video else None)
    if background:
        extra.append(f"data.background={background}")
    cfg = resolve(PretrainJob, args, extra)
    motion, background = cfg.motion, cfg.data.background
    if min(args.clips, args.frames, args.size, args.strip_frames, args.stride) < 1 or args.fps <= 0:
        raise ValueError("--clips, --frames, --size, --strip-frames and --stride must be >= 1, --fps > 0")
    if background in ("frame", "video") and not args.video:
        raise ValueError(f"background {background!r} needs --video PATH")
    bank = load_bank(args.bank or motion.bank)
    g = torch.Generator().manual_seed(args.seed)
    natural = _read_video(args.video, args.clips, args.frames, args.size, args.stride) if args.video else None
    clips = make_background(background, args.clips, args.frames, args.size, args.size, g, natural)
    motion.device = "cpu"
    video, alpha = infuse_motion(clips.contiguous(), bank, motion, g)
    gif, strip = render(video, alpha, args.strip_frames)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gif[0].save(out / "motion.gif", save_all=True, append_images=gif[1:], duration=round(1000 / args.fps), loop=0)
    strip.save(out / "filmstrip.png")
    if not cfg.run.quiet:
        print(f"wrote {out / 'motion.gif'} ({len(gif)} frames) and {out / 'filmstrip.png'} "
              f"({args.clips} clips, background {background}, trajectory {motion.trajectory}, "
              f"{motion.num_objects} objects, {len(bank)} bank objects)")
    return 0
