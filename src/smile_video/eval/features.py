"""Frozen-encoder features, extracted once and cached to a file keyed by everything that determines them.

A clip's feature is the mean of the encoder's output tokens (after its final norm; a finetuned
`VideoClassifier` pools as it was trained: mean, then `fc_norm`). With `flip_view=True` the
horizontally flipped clip is encoded too, so the linear probe can draw a flip augmentation per epoch from the cache
(Table 16's "flip augmentation"). Items that share a list index (multi-view testing: clips x crops) are averaged.
While extracting, the per-clip frame similarity map (Fig. 4) is accumulated at no extra cost.

The cache key hashes: the checkpoint file's contents (or "random init" + seed), the model config, the list file's
contents, the data root, and the sampling settings. A cache file whose stored key differs is recomputed.

`list_tokens` / `encoder_tokens` give every output token of one clip per video (a seeded subset of the list), uncached,
for `eval.diagnostics`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import ModelConfig
from ..data.normalize import normalize
from ..run_guard import LOCK_NAME
from ..runlog import atomic_write_bytes
from .similarity import frame_similarity, time_step_features

__all__ = ["FeatureSet", "extract_features", "file_digest", "cache_key", "load_or_extract", "load_frozen_encoder",
           "clip_loader", "list_features", "list_tokens", "encoder_tokens"]

CACHE_VERSION = 1


@dataclass
class FeatureSet:
    """Cached features of one list of videos."""

    feats: Tensor  # (N, V, D) float32 (pooling "tokens": (N, V, L, D) float16); V = 2 (original, flipped) with
    # flip_view, else 1
    labels: Tensor  # (N,) int64
    indices: Tensor  # (N,) int64, the entry index in the list
    similarity: Tensor  # (T', T') frame-feature similarity averaged over clips
    skipped: int = 0  # files the data pipeline could not decode (and replaced by the next entry)


def file_digest(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's contents; for a directory (a checkpoint or run directory), of every file's relative path,
    size and modification time (cheap, and it changes whenever a checkpoint is rewritten)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file() and q.name != LOCK_NAME):  # a job's lock: no content
            st = p.stat()
            h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_key(**parts: Any) -> str:
    """A stable hash of JSON-able parts (checkpoint digest, list digest, model config, sampling settings...)."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_frozen_encoder(checkpoint: str | None, cfg: ModelConfig, seed: int = 0) -> tuple[nn.Module, ModelConfig,
                                                                                           str]:
    """The encoder to evaluate, frozen (requires_grad False, eval mode), its config and an identity string for cache
    keys: a checkpoint (any format `smile_video.checkpoint.load_encoder` reads) or, with checkpoint=None, a random
    initialisation drawn under `seed` (the global RNG is restored afterwards)."""
    if checkpoint:
        from ..checkpoint import load_encoder

        if not Path(checkpoint).exists():
            raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
        encoder, cfg = load_encoder(checkpoint, cfg)
        identity = f"checkpoint:{file_digest(checkpoint)}"
    else:
        from ..models import VideoViTEncoder

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = VideoViTEncoder(cfg)
        identity = f"random-init:{seed}"
    encoder.requires_grad_(False)
    encoder.eval()
    return encoder, cfg, identity


POOLINGS = ("mean", "time", "tokens")


def _encode(encoder: nn.Module, video: Tensor, grid: tuple[int, int, int], dtype: torch.dtype | None,
            pooling: str = "mean") -> tuple[Tensor, Tensor]:
    """Raw clips (B, 3, T, H, W) -> pooled features float32 and frame similarity (B, T', T').

    pooling "mean": (B, D), the tokens' mean as the model was trained (fc_norm if any) — VideoMAE's probe;
    "time": (B, T' * D), the mean over space of each time step, concatenated in time order (keeps the order of
    events, which a mean over all tokens discards); "tokens": (B, N, D) float16, every output token (for the
    attentive probe; N x D x 2 bytes a clip and view in the cache).
    """
    x = normalize(video)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        if hasattr(encoder, "forward_tokens"):  # our encoders: pool as the model was trained (fc_norm if any)
            from ..models import encode

            pooled, tokens = encode(encoder, x, per_token=True)  # (B, D), (B, N, D)
        else:  # any module returning all tokens
            tokens = encoder(x)  # (B, N, D)
            pooled = tokens.mean(dim=1)
    tokens = tokens.float()
    if pooling == "tokens":
        return tokens.half(), frame_similarity(tokens, grid)
    if pooling == "time":
        pooled = time_step_features(tokens, grid).flatten(1)  # (B, T' * D)
    return pooled.float(), frame_similarity(tokens, grid)


@torch.inference_mode()
def extract_features(encoder: nn.Module, batches: Iterable[dict[str, Any]], grid: tuple[int, int, int],
                     device: str | torch.device = "cpu", flip_view: bool = False,
                     dtype: torch.dtype | None = None, pooling: str = "mean") -> FeatureSet:
    """Encode every batch and average the items of each list index.

    batches: `smile_video.data.dataset.collate` dicts: "video" uint8 (B, 3, T, H, W) (the views of one entry share
    its "index"), "label" (B,), "index" (B,) (the entry actually decoded) and "skipped" (the files the data pipeline
    replaced; only counted). `grid` is the encoder's token grid (ModelConfig.grid).
    `dtype`: autocast dtype (e.g. torch.bfloat16 on CUDA) or None for full precision. `pooling`: see `_encode`.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    device = torch.device(device)
    sums: dict[int, Tensor] = {}
    counts: dict[int, int] = {}
    labels: dict[int, int] = {}
    sim_sum: Tensor | None = None
    clips = 0
    skipped = 0
    for batch in batches:
        video = batch["video"].to(device)  # (B, 3, T, H, W)
        label = torch.as_tensor(batch["label"]).long().view(-1)  # (B,)
        index = torch.as_tensor(batch["index"]).long().view(-1)  # (B,)
        skipped += len(batch.get("skipped", ()))
        f, sim = _encode(encoder, video, grid, dtype, pooling)  # (B, D) or (B, T' * D), (B, T', T')
        views = [f]
        if flip_view:
            views.append(_encode(encoder, video.flip(-1), grid, dtype, pooling)[0])
        feats = torch.stack(views, dim=1).cpu()  # (B, V, D) or (B, V, L, D)
        sim_sum = sim.sum(0).cpu() if sim_sum is None else sim_sum + sim.sum(0).cpu()
        clips += sim.shape[0]
        for j, i in enumerate(index.tolist()):
            sums[i] = sums[i] + feats[j] if i in sums else feats[j].clone()
            counts[i] = counts.get(i, 0) + 1
            labels[i] = int(label[j])
    if not sums:
        raise ValueError("feature extraction produced no features: every item was skipped or the data is empty")
    order = sorted(sums)
    feats = torch.stack([sums[i] / counts[i] for i in order])  # (N, V, D)
    assert sim_sum is not None
    return FeatureSet(feats=feats, labels=torch.tensor([labels[i] for i in order]), indices=torch.tensor(order),
                      similarity=sim_sum / clips, skipped=skipped)


def load_or_extract(path: str | Path, key: str, make: Callable[[], FeatureSet]) -> tuple[FeatureSet, bool]:
    """The cached FeatureSet at `path` when its stored key equals `key`; otherwise `make()`, saved to `path`.
    Returns (features, reused)."""
    path = Path(path)
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("key") == key:
            t = load_file(str(path))
            return FeatureSet(feats=t["feats"], labels=t["labels"], indices=t["indices"],
                              similarity=t["similarity"], skipped=int(meta.get("skipped", 0))), True
    fs = make()
    tensors = {"feats": fs.feats.contiguous(), "labels": fs.labels.contiguous(), "indices": fs.indices.contiguous(),
               "similarity": fs.similarity.contiguous()}
    atomic_write_bytes(path, save(tensors, metadata={"key": key, "skipped": str(fs.skipped)}))
    return fs, False


def clip_loader(cfg: ModelConfig, list_path: str, data_root: str, sampling_rate: int,
                test_views: tuple[int, int] = (1, 1), batch_size: int = 8, num_workers: int = 0,
                max_items: int | None = None, seed: int = 0) -> DataLoader:
    """Evaluation clips of a list's videos (evenly placed clips x crops, no random augmentation), in list order, as
    batches of `smile_video.data.dataset.collate` dicts. `max_items`: at most that many entries, drawn without
    replacement under `seed` when the list is longer (kept in list order)."""
    from ..data.dataset import VideoClipDataset, collate
    from ..data.lists import read_video_list

    entries = read_video_list(list_path, data_root=data_root)
    ds: Dataset = VideoClipDataset(entries, num_frames=cfg.num_frames, sampling_rate=sampling_rate,
                                   size=cfg.img_size, train=False, test_views=test_views)
    if max_items is not None and max_items < len(entries):
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        pick = torch.randperm(len(entries), generator=torch.Generator().manual_seed(seed))[:max_items]
        ds = Subset(ds, pick.sort().values.tolist())
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)


def list_features(encoder: nn.Module, identity: str, cfg: ModelConfig, list_path: str, data_root: str,
                  sampling_rate: int, cache_dir: str | Path, split: str, flip_view: bool = False,
                  test_views: tuple[int, int] = (1, 1), batch_size: int = 8, num_workers: int = 0,
                  device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                  progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
                  pooling: str = "mean") -> tuple[FeatureSet, bool]:
    """Features of every video of a list file (centre crops / test views, no random augmentation), cached in
    `cache_dir/<split>-<key>.safetensors`. Returns (features, reused_from_cache)."""
    if not list_path:
        raise ValueError(f"the {split} list is not set (probe.{split}_list=PATH)")
    if not Path(list_path).exists():
        raise FileNotFoundError(f"{split} list {list_path!r} does not exist")
    key = cache_key(encoder=identity, model=asdict(cfg), list=file_digest(list_path), data_root=data_root,
                    sampling_rate=sampling_rate, flip_view=flip_view, test_views=list(test_views),
                    **({"pooling": pooling} if pooling != "mean" else {}))

    def make() -> FeatureSet:
        loader = clip_loader(cfg, list_path, data_root, sampling_rate, test_views, batch_size, num_workers)
        batches: Iterable[Any] = loader if progress is None else progress(loader, len(loader))
        return extract_features(encoder.to(device), batches, cfg.grid, device, flip_view, dtype, pooling)

    return load_or_extract(Path(cache_dir) / f"{split}-{key[:16]}.safetensors", key, make)


@torch.inference_mode()
def list_tokens(encoder: nn.Module, cfg: ModelConfig, list_path: str, data_root: str = "", sampling_rate: int = 2,
                max_clips: int = 64, batch_size: int = 8, seed: int = 0, device: str | torch.device = "cpu",
                num_workers: int = 0) -> tuple[Tensor, Tensor]:
    """All output tokens of one centre clip per video (`clip_loader`): tokens (B, N, C) float32 on the CPU in
    (t', h', w') order (the encoder's `forward_tokens`: after its final norm), labels (B,) int64.

    At most `max_clips` videos: the whole list when it is no longer, else `max_clips` entries drawn under `seed`. A file
    the data pipeline cannot decode is replaced by the next entry (its behaviour); an entry that is then decoded twice
    is kept once, so B can fall below `max_clips`.
    """
    if not Path(list_path).exists():
        raise FileNotFoundError(f"list {list_path!r} does not exist")
    if max_clips < 1 or batch_size < 1:
        raise ValueError(f"max_clips and batch_size must be >= 1, got {max_clips}, {batch_size}")
    from ..models import encode

    device = torch.device(device)
    encoder = encoder.to(device)
    loader = clip_loader(cfg, list_path, data_root, sampling_rate, (1, 1), batch_size, num_workers, max_clips, seed)
    tokens: dict[int, Tensor] = {}
    labels: dict[int, int] = {}
    for batch in loader:
        x = normalize(batch["video"].to(device))  # (b, 3, T, H, W)
        _, t = encode(encoder, x, per_token=True)  # (b, N, C)
        assert t is not None
        for j, i in enumerate(batch["index"].tolist()):
            if i not in tokens:
                tokens[i] = t[j].float().cpu()  # (N, C)
                labels[i] = int(batch["label"][j])
    if not tokens:
        raise ValueError(f"{list_path}: no video could be decoded; see `smile data-check`")
    order = sorted(tokens)
    return torch.stack([tokens[i] for i in order]), torch.tensor([labels[i] for i in order], dtype=torch.long)


def encoder_tokens(checkpoint: str | None, model_cfg: ModelConfig, list_path: str, data_root: str = "",
                   sampling_rate: int = 2, max_clips: int = 64, batch_size: int = 8, seed: int = 0,
                   device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """`list_tokens` of a checkpoint's frozen encoder (or, with checkpoint=None, of a random init of `model_cfg`
    drawn under `seed`; `load_frozen_encoder`): tokens (B, N, C) float32, labels (B,) int64. Their token grid is
    that of the config the checkpoint describes (`load_frozen_encoder(...)[1].grid`); `model_cfg` only fills in what
    a checkpoint does not say."""
    encoder, cfg, _ = load_frozen_encoder(checkpoint, model_cfg, seed=seed)
    return list_tokens(encoder, cfg, list_path, data_root, sampling_rate, max_clips, batch_size, seed, device)
