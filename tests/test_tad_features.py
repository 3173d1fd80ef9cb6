"""`smile tad-features`: window placement, one (T, C) array per video, each row the encoder's features of its window."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_two_class_videos

from smile_video.cli import main
from smile_video.eval.tad import tad_window_starts

TINY = ["model.img_size=32", "model.num_frames=4", "model.embed_dim=32", "model.depth=2", "model.num_heads=2"]


def test_window_starts():
    assert tad_window_starts(12, 4, 2) == [0, 2, 4, 6, 8]  # start + span <= 12
    assert tad_window_starts(16, 16, 4) == [0]
    assert tad_window_starts(5, 16, 4) == [0]  # shorter than a window: one, its last frame repeated
    assert tad_window_starts(100, 16, 4)[-1] == 84 and len(tad_window_starts(100, 16, 4)) == (100 - 16) // 4 + 1


def test_tad_features_end_to_end(tmp_path):
    lines = write_two_class_videos(tmp_path, 2, base=40, step=10, top=10, still_x=10, still_value=90)  # 12 frames
    lst = tmp_path / "videos.txt"
    lst.write_text("\n".join(ln.split()[0] for ln in lines) + "\n")
    out = tmp_path / "run"
    args = ["tad-features", "--random-init", "--out", str(out), "--quiet", f"tad.list={lst}", "tad.stride=2",
            "tad.batch_size=3", *TINY]
    assert main(args) == 0
    meta = json.loads((out / "features" / "features.json").read_text())
    assert (meta["window"], meta["stride"], meta["dim"]) == (4, 2, 32)
    assert meta["videos"]["v0"] == {"frames": 12, "fps": 10.0, "windows": 5}
    feats = np.load(out / "features" / "v0.npy")
    assert feats.shape == (5, 32) and feats.dtype == np.float32 and np.isfinite(feats).all()
    # row 3 is the window of frames 6..9, encoded as one clip (batches of 3 split the windows 3 + 2)
    from smile_video.config import ModelConfig
    from smile_video.data.decode import open_video
    from smile_video.data.normalize import normalize
    from smile_video.data.transforms import spatial_views
    from smile_video.eval.features import load_frozen_encoder
    from smile_video.models import encode

    enc, _, _ = load_frozen_encoder(None, ModelConfig(img_size=32, num_frames=4, embed_dim=32, depth=2, num_heads=2))
    with open_video(str(tmp_path / "v0.mp4")) as r:
        clip = spatial_views(r.get_frames([6, 7, 8, 9]).permute(3, 0, 1, 2), 32, 1)  # (1, 3, 4, 32, 32)
    with torch.inference_mode():
        ref = encode(enc, normalize(clip))[0][0]
    np.testing.assert_allclose(feats[3], ref.numpy(), rtol=1e-4, atol=1e-5)
    # a second run keeps the arrays already written; a list with a repeated video id is refused
    assert main(args) == 0 and np.array_equal(np.load(out / "features" / "v0.npy"), feats)
    lst.write_text(f"{tmp_path / 'v0.mp4'}\n{tmp_path / 'v0.mp4'}\n")
    assert main(args) == 1


@pytest.mark.parametrize("name,task,classes", [("ssv2", "classification", 174), ("gym99", "classification", 99),
                                               ("ucf101_1000", "classification", 101),
                                               ("gym99_1000", "classification", 99),
                                               ("fx_s1", "classification", 11), ("ub_s1", "classification", 15),
                                               ("charades", "multilabel", 157), ("ucfrep", "counting", 0)])
def test_severe_overlays_resolve_on_the_severe_recipe(name, task, classes):
    from smile_video.config import FinetuneJob, load_config

    f = load_config(FinetuneJob, ["configs/finetune/severe.yaml", f"configs/finetune/severe/{name}.yaml"]).finetune
    assert (f.task, f.num_classes) == (task, classes)
    assert (f.epochs, f.batch_size, f.lr, f.layer_decay) == (100, 16, 1e-3, 0.75)  # Table 17, SEVERE column


def test_vos_and_tad_configs_resolve():
    from smile_video.config import load_config
    from smile_video.config.generalisation import TadJob, VosJob

    assert load_config(VosJob, ["configs/vos/davis2017.yaml"]).vos.layout == "davis"
    assert load_config(VosJob, ["configs/vos/ytvos.yaml"]).vos.layout == "ytvos"
    assert load_config(TadJob, ["configs/tad/thumos14.yaml"]).tad.stride == 4
    assert load_config(TadJob, ["configs/tad/anet13.yaml"]).model.num_frames == 16
