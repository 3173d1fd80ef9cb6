"""Linear probe on cached features, and the feature cache."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import write_two_class_videos
from torch import nn

from smile_video.config import ProbeConfig
from smile_video.eval.features import FeatureSet, cache_key, extract_features, load_or_extract
from smile_video.eval.linear_probe import (
    PROTOCOL_TEST,
    PROTOCOL_VAL,
    classification_metrics,
    select_on_val,
    train_linear_probe,
)


def _blobs(n: int, k: int, d: int, seed: int, spread: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=torch.Generator().manual_seed(123)) * spread  # shared by train and val
    labels = torch.randint(k, (n,), generator=g)
    return centres[labels] + torch.randn(n, d, generator=g), labels


def _cfg(**kw) -> ProbeConfig:
    base = dict(epochs=20, batch_size=64, lrs=[1e-3, 1e-1], weight_decay=0.05, batchnorm=True)
    return dataclasses.replace(ProbeConfig(), **{**base, **kw})


def test_separable_features_reach_high_accuracy():
    xt, yt = _blobs(400, 5, 16, seed=0)
    xv, yv = _blobs(200, 5, 16, seed=1)
    res = train_linear_probe(xt, yt, xv, yv, _cfg(), torch.Generator().manual_seed(0))
    assert res.best["top1"] >= 97.0
    assert res.best["top5"] == 100.0
    low, high = res.history[-1]["train_loss"]
    assert high < low < res.history[0]["train_loss"][0] + 1e-6  # both learn; the larger lr fits faster
    assert len(res.metrics) == 2 and len(res.history) == 20


def test_random_labels_give_chance_accuracy():
    g = torch.Generator().manual_seed(0)
    xt, xv = torch.randn(400, 16, generator=g), torch.randn(1000, 16, generator=g)
    yt, yv = torch.randint(4, (400,), generator=g), torch.randint(4, (1000,), generator=g)
    res = train_linear_probe(xt, yt, xv, yv, _cfg(), torch.Generator().manual_seed(0))
    for m in res.metrics:
        assert 18.0 <= m["top1"] <= 32.0  # chance is 25%


def test_lrs_trained_together_equal_each_trained_alone():
    xt, yt = _blobs(150, 3, 8, seed=0, spread=1.0)
    xv, yv = _blobs(60, 3, 8, seed=1, spread=1.0)
    lrs = [1e-3, 3e-2, 3e-1]
    xt2 = torch.stack([xt, xt.flip(-1)], dim=1)  # (N, 2, D): two views, one drawn per sample and epoch
    together = train_linear_probe(xt2, yt, xv, yv, _cfg(lrs=lrs, epochs=5), torch.Generator().manual_seed(7))
    for i, lr in enumerate(lrs):
        alone = train_linear_probe(xt2, yt, xv, yv, _cfg(lrs=[lr], epochs=5), torch.Generator().manual_seed(7))
        torch.testing.assert_close(alone.weights[0], together.weights[i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(alone.biases[0], together.biases[i], rtol=1e-5, atol=1e-6)
        assert alone.metrics[0] == pytest.approx(together.metrics[i])
    assert not torch.allclose(together.weights[0], together.weights[2])  # different lrs did train differently


def test_select_on_val_breaks_ties_by_mean_class_then_epoch_then_smaller_lr():
    def m(top1: float, mean_class: float) -> dict[str, float]:
        return {"top1": top1, "top5": 100.0, "mean_class": mean_class}

    lrs = [1e-2, 1e-3]  # not sorted: "smaller lr" means the value, not the position
    history = [[m(50, 50), m(70, 60)],  # epoch 1
               [m(70, 65), m(70, 65)],  # epoch 2: top-1 and mean-class tie, lr 1e-3 is smaller
               [m(60, 90), m(70, 65)]]  # epoch 3: same as epoch 2's best, but later
    assert select_on_val(history, lrs) == (1, 1)
    assert select_on_val(history, [1e-3, 1e-2]) == (1, 0)
    history[2][0] = m(71, 0)  # a higher top-1 wins over everything else
    assert select_on_val(history, lrs) == (2, 0)


def _half_blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x = torch.randn(n, 4, generator=g)
    x[:, 0] += (2 * y - 1) * 0.5  # weakly separable: accuracy moves from epoch to epoch
    return x, y


def test_probe_chooses_on_val_and_reports_test_at_that_point():
    """Test clips = the val clips with flipped labels, so test top-1 = 100 - val top-1 at every (lr, epoch): the val
    best is a test worst. The result must be the test metrics at the val-best (lr, epoch), which here is neither the
    best test point nor the last epoch."""
    xt, yt = _half_blobs(64, 0)
    xv, yv = _half_blobs(64, 100)
    cfg = _cfg(epochs=6, batch_size=16, lrs=[1e-3, 3.0])
    res = train_linear_probe(xt, yt, xv, yv, cfg, torch.Generator().manual_seed(0), test_feats=xv,
                             test_labels=1 - yv)
    val = torch.tensor([h["val_top1"] for h in res.history])  # (E, L)
    test = torch.tensor([h["test_top1"] for h in res.history])
    torch.testing.assert_close(test, 100.0 - val, rtol=0, atol=1e-9)
    e, i = divmod(int(val.argmax()), val.shape[1])  # first maximum: the earliest epoch (top-1 is unique here)
    sel = res.selected
    assert (sel["epoch"], sel["lr"]) == (e + 1, cfg.lrs[i]) and res.best_lr == cfg.lrs[i]
    assert sel["val"]["top1"] == pytest.approx(float(val.max()))
    assert sel["test"]["top1"] == pytest.approx(float(test[e, i])) and res.best == sel["test"]
    assert sel["epoch"] < cfg.epochs and sel["test"]["top1"] != pytest.approx(float(test[-1, i]))  # not the last
    assert sel["test"]["top1"] < float(test.max()) - 10  # and not the test best
    out = res.to_dict()
    assert out["protocol"] == PROTOCOL_TEST and out["selected"] == sel and out["best"] == sel["test"]
    assert [r["test"]["top1"] for r in out["per_lr"]] == pytest.approx(test[-1].tolist())  # last epoch per lr
    assert [r["top1"] for r in out["per_lr"]] == pytest.approx(val[-1].tolist())


def test_without_a_test_set_the_probe_is_best_of_val_as_before():
    """The test set only adds evaluations: same heads, same per-lr val metrics; without it the result is the last
    epoch's best val lr, labelled as such, and nothing else."""
    xt, yt = _half_blobs(64, 0)
    xv, yv = _half_blobs(64, 100)
    cfg = _cfg(epochs=6, batch_size=16, lrs=[1e-3, 3.0])
    plain = train_linear_probe(xt, yt, xv, yv, cfg, torch.Generator().manual_seed(0))
    with_test = train_linear_probe(xt, yt, xv, yv, cfg, torch.Generator().manual_seed(0), test_feats=xv,
                                   test_labels=1 - yv)
    assert torch.equal(plain.weights, with_test.weights) and torch.equal(plain.biases, with_test.biases)
    assert plain.metrics == with_test.metrics
    assert [h["val_top1"] for h in plain.history] == [h["val_top1"] for h in with_test.history]
    assert plain.selected is None and plain.test_metrics is None
    assert all(set(h) == {"epoch", "train_loss", "val_top1"} for h in plain.history)
    last = plain.metrics
    best = max(range(2), key=lambda j: (last[j]["top1"], last[j]["mean_class"]))
    out = plain.to_dict()
    assert out == {"protocol": PROTOCOL_VAL, "best_lr": cfg.lrs[best], "best": last[best],
                   "per_lr": [{"lr": lr, **m} for lr, m in zip(cfg.lrs, last)]}
    with pytest.raises(ValueError, match="test"):
        train_linear_probe(xt, yt, xv, yv, cfg, torch.Generator().manual_seed(0), test_feats=xv)
    with pytest.raises(ValueError, match="test_feats"):
        train_linear_probe(xt, yt, xv, yv, cfg, torch.Generator().manual_seed(0), test_feats=xv[:, :3],
                           test_labels=yv)


def test_classification_metrics_on_a_constructed_case():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])
    labels = torch.tensor([0, 1, 1, 1])
    m = classification_metrics(scores, labels)
    assert m["top1"] == pytest.approx(50.0)  # rows 0 and 1 right; rows 2, 3 predict 0 and 2
    assert m["top5"] == pytest.approx(100.0)  # top-min(5, K) covers every class
    assert m["mean_class"] == pytest.approx(100.0 * (1.0 + 1 / 3) / 2)  # class 0: 1/1, class 1: 1/3


class _FakeEncoder(nn.Module):
    """(B, 3, T, H, W) -> (B, N, C) tokens on a (T/2, H/16, W/16) grid."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Conv3d(3, dim, kernel_size=(2, 16, 16), stride=(2, 16, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def test_extract_features_averages_views_and_adds_flips():
    torch.manual_seed(0)
    enc = _FakeEncoder().eval()
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (5, 3, 4, 32, 32), dtype=torch.uint8, generator=g)  # (B, 3, T, H, W)
    # As the data pipeline collates: two views of entry 5, two of entry 3, one of entry 9 (the replacement of a
    # file it could not decode, reported under "skipped").
    batch = {"video": video, "label": torch.tensor([2, 2, 0, 0, 1]), "index": torch.tensor([5, 5, 3, 3, 9]),
             "skipped": ["bad.mp4: cannot decode"]}
    fs = extract_features(enc, [batch], (2, 2, 2), flip_view=True)
    assert fs.feats.shape == (3, 2, 8) and fs.skipped == 1
    assert fs.indices.tolist() == [3, 5, 9] and fs.labels.tolist() == [0, 2, 1]
    from smile_video.data.normalize import normalize

    with torch.no_grad():
        ref = enc(normalize(video[:2])).mean(1).mean(0)  # views of index 5, averaged
        ref_flip = enc(normalize(video[:2].flip(-1))).mean(1).mean(0)
    torch.testing.assert_close(fs.feats[1, 0], ref)
    torch.testing.assert_close(fs.feats[1, 1], ref_flip)
    assert fs.similarity.shape == (2, 2)
    torch.testing.assert_close(fs.similarity.diagonal(), torch.ones(2))


def test_cache_is_reused_only_when_the_key_matches(tmp_path):
    calls = []

    def make() -> FeatureSet:
        calls.append(1)
        return FeatureSet(torch.randn(4, 1, 3), torch.arange(4), torch.arange(4), torch.eye(2), skipped=1)

    path = tmp_path / "train.safetensors"
    a, reused_a = load_or_extract(path, cache_key(ckpt="x", list="y"), make)
    b, reused_b = load_or_extract(path, cache_key(ckpt="x", list="y"), make)
    assert (reused_a, reused_b) == (False, True) and len(calls) == 1
    torch.testing.assert_close(a.feats, b.feats)
    assert b.skipped == 1
    _, reused_c = load_or_extract(path, cache_key(ckpt="x", list="z"), make)
    assert not reused_c and len(calls) == 2


@pytest.fixture(scope="module")
def mp4_lists(tmp_path_factory):
    """Eight tiny mp4 files, two classes (a bright square moving right / a dark still one), VideoMAE-format lists."""
    root = tmp_path_factory.mktemp("videos")
    lines = write_two_class_videos(root, 8, base=30, step=8, top=12, still_x=12, still_value=80)
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[4:]) + "\n")
    (root / "test.txt").write_text("\n".join(lines[1:7]) + "\n")
    return root


def test_probe_and_knn_cli_on_mp4_files_share_the_feature_cache(mp4_lists, tmp_path):
    import json

    from smile_video.cli import main
    from smile_video.runlog import read_metrics

    out = tmp_path / "probe"
    common = ["--random-init", "--out", str(out), "--quiet", f"probe.train_list={mp4_lists / 'train.txt'}",
              f"probe.val_list={mp4_lists / 'val.txt'}", "probe.sampling_rate=2", "model.img_size=32",
              "model.num_frames=4", "model.embed_dim=32", "model.depth=1", "model.num_heads=2"]
    assert main(["probe", *common, "probe.epochs=3", "probe.lrs=[0.001,0.01]", "probe.batch_size=4"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["lr"] for r in res["per_lr"]] == [1e-3, 1e-2] and res["num_train"] == 8 and res["num_val"] == 4
    assert res["best_lr"] in (1e-3, 1e-2) and 0.0 <= res["best"]["top1"] <= 100.0
    assert len([r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "probe"]) == 3
    assert (out / "similarity.png").is_file() and (out / "config.yaml").is_file()
    caches = sorted((out / "features").iterdir())
    assert [p.name.split("-")[0] for p in caches] == ["train", "val"]
    stamps = [p.stat().st_mtime_ns for p in caches]

    # kNN in its own run directory (one run per directory), on the probe's cache: same encoder and lists, reused
    knn_out = tmp_path / "knn"
    knn_args = ["knn", *common, "--out", str(knn_out), f"probe.cache_dir={out / 'features'}", "probe.knn_k=3"]
    assert main(knn_args) == 0
    assert [p.stat().st_mtime_ns for p in sorted((out / "features").iterdir())] == stamps
    knn = json.loads((knn_out / "results.json").read_text())
    assert knn["k"] == 3 and 0.0 <= knn["top1"] <= 100.0

    assert main([*knn_args, "probe.seed=1", "--overwrite"]) == 0  # another random init: new features
    assert len(list((out / "features").iterdir())) == 4


def test_probe_and_knn_with_a_test_list_report_on_test(mp4_lists, tmp_path, capsys):
    import json

    from smile_video.cli import main
    from smile_video.runlog import read_metrics

    out = tmp_path / "probe"
    common = ["--random-init", "--out", str(out), f"probe.train_list={mp4_lists / 'train.txt'}",
              f"probe.val_list={mp4_lists / 'val.txt'}", f"probe.test_list={mp4_lists / 'test.txt'}",
              "probe.sampling_rate=2", "model.img_size=32", "model.num_frames=4", "model.embed_dim=32",
              "model.depth=1", "model.num_heads=2"]
    assert main(["probe", *common, "probe.epochs=3", "probe.lrs=[0.001,0.01]", "probe.batch_size=4"]) == 0
    assert "chosen on val, reported on test" in capsys.readouterr().err  # the log line
    res = json.loads((out / "results.json").read_text())
    assert res["protocol"] == PROTOCOL_TEST and (res["num_train"], res["num_val"], res["num_test"]) == (8, 4, 6)
    sel = res["selected"]
    assert set(sel) == {"lr", "epoch", "val", "test"} and 1 <= sel["epoch"] <= 3 and sel["lr"] == res["best_lr"]
    assert res["best"] == sel["test"] and all("test" in r for r in res["per_lr"])
    probe_records = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "probe"]
    i = [r["lr"] for r in res["per_lr"]].index(sel["lr"])
    assert sel["test"]["top1"] == pytest.approx(probe_records[sel["epoch"] - 1]["test_top1"][i])
    caches = sorted(p.name.split("-")[0] for p in (out / "features").iterdir())
    assert caches == ["test", "train", "val"]
    stamps = sorted(p.stat().st_mtime_ns for p in (out / "features").iterdir())

    knn_out = tmp_path / "knn"  # its own run directory, the probe's cache
    assert main(["knn", *common, "--out", str(knn_out), f"probe.cache_dir={out / 'features'}", "probe.knn_k=3"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in (out / "features").iterdir()) == stamps  # test included, reused
    knn = json.loads((knn_out / "results.json").read_text())
    assert "on test" in knn["protocol"] and set(knn["val"]) == set(knn["test"]) == {"top1", "top5", "mean_class"}
    assert {k: knn[k] for k in ("top1", "top5", "mean_class")} == knn["test"]
    # by hand: kNN of the test features against the train bank, centred on the train features (the default)
    from safetensors.torch import load_file

    from smile_video.eval.knn import knn_evaluate

    feats = {p.name.split("-")[0]: load_file(str(p)) for p in (out / "features").iterdir()}
    ref = {centre: knn_evaluate(feats["train"]["feats"][:, 0], feats["train"]["labels"], feats["test"]["feats"],
                                feats["test"]["labels"], ks=[3], num_classes=2, centre=centre)[3]
           for centre in (True, False)}
    assert knn["centre"] is True and knn["test"] == pytest.approx(ref[True])
    plain_out = tmp_path / "knn_plain"  # DINO's plain cosine on request
    assert main(["knn", *common, "--out", str(plain_out), f"probe.cache_dir={out / 'features'}", "probe.knn_k=3",
                 "probe.knn_centre=false"]) == 0
    plain = json.loads((plain_out / "results.json").read_text())
    assert plain["centre"] is False and plain["test"] == pytest.approx(ref[False])


def test_a_missing_test_list_fails_before_any_feature_extraction(mp4_lists, tmp_path, capsys):
    from smile_video.cli import main

    out = tmp_path / "probe"
    for verb in ("probe", "knn"):
        assert main([verb, "--random-init", "--out", str(out), "--quiet",
                     f"probe.train_list={mp4_lists / 'train.txt'}", f"probe.val_list={mp4_lists / 'val.txt'}",
                     "probe.test_list=no_such_test.txt", "model.img_size=32", "model.num_frames=4"]) == 1
        err = capsys.readouterr().err
        assert "probe.test_list" in err and "no_such_test.txt" in err
        assert not (out / "features").exists()


def test_test_list_config_is_checked():
    from smile_video.config import ConfigError, ProbeJob, load_config

    assert load_config(ProbeJob).probe.test_list == ""
    assert load_config(ProbeJob, overrides=["probe.test_list=t.csv", "probe.val_list=v.csv"]).probe.test_list == "t.csv"
    with pytest.raises(ConfigError, match="probe.test_list"):
        load_config(ProbeJob, overrides=["probe.val_list=lists/v.csv", "probe.test_list=lists/./v.csv"])
    with pytest.raises(ConfigError, match="probe.test_list"):
        load_config(ProbeJob, overrides=["probe.train_list=a.csv", "probe.test_list=a.csv"])


def test_probe_cli_errors_name_the_problem(tmp_path, capsys):
    from smile_video.cli import main

    assert main(["probe", "--random-init", "--out", str(tmp_path), "probe.train_list=nope.txt",
                 "probe.val_list=nope.txt"]) == 1
    assert "nope.txt" in capsys.readouterr().err
    assert main(["probe", "--random-init", "probe.knn_vote=mean"]) == 2
    assert "probe.knn_vote" in capsys.readouterr().err


# Table 16: (epochs, flip) per dataset; base lr 1e-3, weight decay 0.05, betas (0.9, 0.999), batch 128 for all.
TABLE16 = {"k400": (30, True), "ucf101": (100, True), "hmdb51": (100, True), "ssv2": (50, False),
           "gym99": (100, True), "epic": (100, True)}


@pytest.mark.parametrize("name", sorted(TABLE16))
def test_probe_recipes_follow_table16(name):
    from pathlib import Path

    from smile_video.config import ProbeJob, load_config

    path = Path(__file__).parent.parent / "configs" / "probe" / f"{name}.yaml"
    p = load_config(ProbeJob, [str(path)]).probe
    assert (p.epochs, p.flip) == TABLE16[name]
    assert (p.lrs, p.weight_decay, p.betas, p.batch_size) == ([1e-3], 0.05, [0.9, 0.999], 128)


def test_time_pooling_keeps_the_order_of_time_steps():
    """pooling="time" concatenates per-time-step means, so reversing a clip in time changes its feature."""
    from smile_video.eval.features import _encode

    class Tokens(torch.nn.Module):  # tokens = the clip's pixels, one token per (t, h, w) cell of a 2 x 1 x 1 grid
        def forward(self, x):
            return x.mean(dim=(1, 3, 4)).unsqueeze(-1).expand(-1, -1, 3)  # (B, T, 3): N = T tokens

    video = torch.linspace(0, 1, 2).view(1, 1, 2, 1, 1).expand(1, 3, 2, 4, 4).contiguous()
    mean_fwd, _ = _encode(Tokens(), video, (2, 1, 1), None, "mean")
    mean_rev, _ = _encode(Tokens(), video.flip(2), (2, 1, 1), None, "mean")
    time_fwd, _ = _encode(Tokens(), video, (2, 1, 1), None, "time")
    time_rev, _ = _encode(Tokens(), video.flip(2), (2, 1, 1), None, "time")
    assert torch.allclose(mean_fwd, mean_rev)
    assert time_fwd.shape == (1, 6) and not torch.allclose(time_fwd, time_rev)
    assert torch.allclose(time_fwd.view(2, 3).flip(0), time_rev.view(2, 3))


def test_probe_repeats_report_the_mean_of_independent_probes(mp4_lists, tmp_path):
    import json

    from safetensors.torch import load_file

    from smile_video.cli import main
    from smile_video.config import ConfigError, ProbeJob, load_config
    from smile_video.eval.probe_job import repeat_seed

    common = ["--random-init", "--quiet", f"probe.train_list={mp4_lists / 'train.txt'}",
              f"probe.val_list={mp4_lists / 'val.txt'}", f"probe.test_list={mp4_lists / 'test.txt'}",
              "probe.sampling_rate=2", "model.img_size=32", "model.num_frames=4", "model.embed_dim=32",
              "model.depth=1", "model.num_heads=2", "probe.epochs=4", "probe.lrs=[0.01,0.1]", "probe.batch_size=4"]
    one, three = tmp_path / "one", tmp_path / "three"
    assert main(["probe", *common, "--out", str(one)]) == 0
    assert main(["probe", *common, "--out", str(three), f"probe.cache_dir={one / 'features'}", "probe.repeats=3"]) == 0
    r1, r3 = (json.loads((d / "results.json").read_text()) for d in (one, three))
    assert "repeats" not in r1 and "best_std" not in r1
    assert "per_lr" in r1 and "per_lr" not in r3  # the top level of R probes holds their means, not repeat 0's
    assert r3["repeats"][0]["per_lr"] == r1["per_lr"]
    assert r3["repeats"][0]["selected"] == r1["selected"]  # repeat 0 is the single probe
    # each later repeat is the probe trained by hand from its own seed on the same features
    cfg = load_config(ProbeJob, overrides=["probe.epochs=4", "probe.lrs=[0.01,0.1]", "probe.batch_size=4"]).probe
    f = {p.name.split("-")[0]: load_file(str(p)) for p in (one / "features").iterdir()}
    tops = []
    for r in range(3):
        g = torch.Generator().manual_seed(repeat_seed(0, r))
        res = train_linear_probe(f["train"]["feats"], f["train"]["labels"], f["val"]["feats"], f["val"]["labels"],
                                 cfg, g, num_classes=2, test_feats=f["test"]["feats"], test_labels=f["test"]["labels"])
        assert res.selected["test"] == pytest.approx(r3["repeats"][r]["selected"]["test"])
        tops.append(res.best["top1"])
    assert len({repeat_seed(0, r) for r in range(3)}) == 3
    assert r3["best"]["top1"] == pytest.approx(sum(tops) / 3) == r3["selected"]["test"]["top1"]
    assert r3["best_std"]["top1"] == pytest.approx(torch.tensor(tops).std().item())
    assert len(r3["selected"]["lr"]) == len(r3["selected"]["epoch"]) == 3
    with pytest.raises(ConfigError, match="probe.repeats"):
        load_config(ProbeJob, overrides=["probe.repeats=0"])


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    from smile_video.eval.linear_probe import confusion_matrix

    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 0, 2, 2])
    want = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert torch.equal(confusion_matrix(preds, labels, 3), want)
    assert torch.equal(confusion_matrix(preds, labels, 4)[:3, :3], want)  # a class nobody has: an empty row/column
    with pytest.raises(ValueError, match="must both be"):
        confusion_matrix(preds[:-1], labels, 3)
