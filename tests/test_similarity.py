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
