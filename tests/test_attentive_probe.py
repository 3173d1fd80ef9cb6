"""The attentive probe: reads what a mean over tokens averages away."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from smile_video.config import ConfigError, ProbeConfig, ProbeJob, load_config
from smile_video.eval.attentive_probe import AttentiveHead, train_attentive_probe
from smile_video.eval.linear_probe import PROTOCOL_TEST, train_linear_probe


def _where_tokens(n: int, seed: int, k: int = 4, length: int = 8, d: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c puts one 'object' vector on token c: the tokens' mean is the same for every class (up to noise),
    only which token holds the object (told by its position code) says the class."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(length, d, generator=torch.Generator().manual_seed(7))  # position codes, shared by splits
    obj = torch.randn(d, generator=torch.Generator().manual_seed(8)) * 2
    labels = torch.randint(k, (n,), generator=g)
    tokens = pos.expand(n, -1, -1) + 0.3 * torch.randn(n, length, d, generator=g)  # (n, L, D)
    tokens[torch.arange(n), labels] += obj
    return tokens, labels


def _cfg(**kw) -> ProbeConfig:
    return dataclasses.replace(ProbeConfig(), **{**dict(epochs=30, batch_size=32, lrs=[1e-2, 1e-1]), **kw})


def test_attentive_probe_reads_which_token_holds_the_object_where_the_mean_cannot():
    xtr, ytr = _where_tokens(256, 0)
    xva, yva = _where_tokens(128, 1)
    xte, yte = _where_tokens(128, 2)
    att = train_attentive_probe(xtr, ytr, xva, yva, _cfg(), torch.Generator().manual_seed(0), num_classes=4,
                                test_tokens=xte, test_labels=yte)
    lin = train_linear_probe(xtr.mean(1), ytr, xva.mean(1), yva, _cfg(), torch.Generator().manual_seed(0),
                             num_classes=4, test_feats=xte.mean(1), test_labels=yte)
    assert att.protocol == PROTOCOL_TEST and att.best == att.selected["test"]
    assert att.best["top1"] > 90.0  # the query learns to attend to the object token and read its position
    assert lin.best["top1"] < 50.0  # the mean tells the classes apart only through noise


def test_training_is_deterministic_and_views_are_accepted():
    xtr, ytr = _where_tokens(64, 0)
    xva, yva = _where_tokens(32, 1)
    two_views = torch.stack([xtr, xtr.flip(1)], dim=1)  # (N, 2, L, D)
    runs = [train_attentive_probe(two_views.half(), ytr, xva, yva, _cfg(epochs=3), torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert runs[0].history == runs[1].history and len(runs[0].history) == 3
    assert runs[0].selected is None and runs[0].best == runs[0].metrics[runs[0].best_index]


def test_every_lr_starts_from_the_same_head():
    g = torch.Generator().manual_seed(0)
    a = AttentiveHead(16, 3, num_heads=4)
    a.reset_parameters(g)
    b = AttentiveHead(16, 3, num_heads=4)
    b.reset_parameters(torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a(torch.randn(2, 5, 16)).shape == (2, 3)
    with torch.no_grad():  # give the biases values: the fast pooling must not depend on their being zero
        for p in a.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = torch.randn(3, 7, 16, generator=g)
    torch.testing.assert_close(a.pool(x), a.pool_reference(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="num_heads"):
        AttentiveHead(10, 3, num_heads=4)


def test_bad_shapes_and_config_are_named():
    x, y = _where_tokens(8, 0)
    with pytest.raises(ValueError, match="train tokens"):
        train_attentive_probe(x.mean(1), y, x, y, _cfg(epochs=1), torch.Generator())
    with pytest.raises(ValueError, match="val tokens have dim"):
        train_attentive_probe(x, y, x[..., :8], y, _cfg(epochs=1), torch.Generator())
    with pytest.raises(ConfigError, match="probe.head"):
        load_config(ProbeJob, overrides=["probe.head=mlp"])


def test_probe_cli_attentive_head_on_mp4_files(tmp_path):
    import json

    from conftest import write_two_class_videos

    from smile_video.cli import main

    root = tmp_path / "videos"
    root.mkdir()
    lines = write_two_class_videos(root, 8, base=30, step=8, top=12, still_x=12, still_value=80)
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[4:]) + "\n")
    (root / "test.txt").write_text("\n".join(lines[1:7]) + "\n")
    out = tmp_path / "probe"
    assert main(["probe", "--random-init", "--out", str(out), "--quiet", f"probe.train_list={root / 'train.txt'}",
                 f"probe.val_list={root / 'val.txt'}", f"probe.test_list={root / 'test.txt'}",
                 "probe.sampling_rate=2", "model.img_size=32", "model.num_frames=4", "model.embed_dim=32",
                 "model.depth=1", "model.num_heads=2", "probe.head=attentive", "probe.epochs=2",
                 "probe.lrs=[0.001,0.01]", "probe.batch_size=4"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["head"] == "attentive" and res["protocol"] == PROTOCOL_TEST and res["num_test"] == 6
    from safetensors.torch import load_file

    train = [load_file(str(p)) for p in (out / "features").iterdir() if p.name.startswith("train")][0]
    assert train["feats"].shape == (8, 2, 2 * 2 * 2, 32) and train["feats"].dtype == torch.float16  # every token
