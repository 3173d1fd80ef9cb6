"""Frame-feature similarity (paper Fig. 4)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from smile_video.eval.features import extract_features
from smile_video.eval.similarity import frame_similarity, off_diagonal_mean, save_similarity, time_step_features

GRID = (4, 2, 2)


def test_time_step_features_average_the_spatial_tokens_of_each_step():
    tokens = torch.arange(2 * 16 * 3, dtype=torch.float32).view(2, 16, 3)  # (B, N, C), N = 4 * 2 * 2
    f = time_step_features(tokens, GRID)
    assert f.shape == (2, 4, 3)
    torch.testing.assert_close(f[1, 2], tokens[1, 8:12].mean(0))  # t'=2 holds tokens 8..11
    with pytest.raises(ValueError, match="grid"):
        time_step_features(tokens[:, :15], GRID)


def test_similarity_is_one_on_the_diagonal_and_for_static_features():
    g = torch.Generator().manual_seed(0)
    sim = frame_similarity(torch.randn(3, 16, 8, generator=g), GRID)
    assert sim.shape == (3, 4, 4)
    torch.testing.assert_close(sim.diagonal(dim1=1, dim2=2), torch.ones(3, 4))
    torch.testing.assert_close(sim, sim.transpose(1, 2))
    assert off_diagonal_mean(sim[0]) < 0.9
    static = torch.randn(1, 1, 4, 8, generator=g).expand(1, 4, 4, 8).reshape(1, 16, 8)  # same tokens each step
    torch.testing.assert_close(frame_similarity(static, GRID), torch.ones(1, 4, 4))


class _Enc(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.proj = nn.Conv3d(3, 8, kernel_size=(2, 16, 16), stride=(2, 16, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x)).flatten(2).transpose(1, 2)  # (B, N, C)


def test_two_encoders_give_different_maps_and_the_figure_is_written(tmp_path):
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (4, 3, 8, 32, 32), dtype=torch.uint8, generator=g)  # (B, 3, T, H, W)
    batch = {"video": video, "label": torch.zeros(4, dtype=torch.long), "index": torch.arange(4)}
    maps = {name: extract_features(_Enc(seed), [batch], GRID).similarity for name, seed in (("a", 0), ("b", 1))}
    for m in maps.values():
        torch.testing.assert_close(m.diagonal(), torch.ones(4))
    assert (maps["a"] - maps["b"]).abs().max() > 1e-3
    save_similarity(maps, tmp_path / "sim.png", tmp_path / "sim.json")
    assert (tmp_path / "sim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "sim.json").read_text())
    assert set(data) == {"a", "b"}
    assert data["a"]["matrix"][1][1] == pytest.approx(1.0, abs=1e-5)
    assert data["b"]["off_diagonal_mean"] == pytest.approx(off_diagonal_mean(maps["b"]))


def test_checkpoint_and_random_init_encoders_side_by_side(tmp_path):
    from smile_video.checkpoint import save_model
    from smile_video.config import ModelConfig
    from smile_video.eval.features import load_frozen_encoder
    from smile_video.models import VideoViTEncoder

    cfg = ModelConfig(img_size=32, num_frames=8, embed_dim=32, depth=1, num_heads=2)
    torch.manual_seed(5)
    save_model(VideoViTEncoder(cfg), cfg, tmp_path / "ckpt")
    loaded, loaded_cfg, ident = load_frozen_encoder(str(tmp_path / "ckpt"), cfg)
    random, _, ident_random = load_frozen_encoder(None, cfg, seed=0)
    again, _, _ = load_frozen_encoder(None, cfg, seed=0)
    assert ident.startswith("checkpoint:") and ident_random == "random-init:0"
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training  # checkably frozen
    torch.testing.assert_close(random.state_dict(), again.state_dict())  # the random init is seeded
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 3, 8, 32, 32), dtype=torch.uint8, generator=g)
    batch = {"video": video, "label": torch.zeros(2, dtype=torch.long), "index": torch.arange(2)}
    maps = {"ckpt": extract_features(loaded, [batch], loaded_cfg.grid).similarity,
            "random init": extract_features(random, [batch], cfg.grid).similarity}
    assert maps["ckpt"].shape == (4, 4) and (maps["ckpt"] - maps["random init"]).abs().max() > 1e-4
    save_similarity(maps, tmp_path / "side.png")
    assert (tmp_path / "side.png").stat().st_size > 1000


@pytest.mark.parametrize("names", [["SMILE"], ["random init", "SMILE"]])
def test_the_figure_title_does_not_overlap_the_map_titles(names):
    import matplotlib.pyplot as plt

    from smile_video.eval.similarity import similarity_figure

    g = torch.Generator().manual_seed(0)
    fig = similarity_figure({n: torch.rand(4, 4, generator=g) for n in names},
                            "Centred frame-feature similarity, motion task val clips")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        if ax.get_title():
            assert not title.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
    plt.close(fig)
