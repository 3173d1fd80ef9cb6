"""Unsupervised VOS: k-means (against sklearn and by hand), Hungarian matching and mIoU by hand, the generated
DAVIS-layout set (exact masks from the compositor's alpha), the readers' errors, and `smile vos` end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from smile_video.cli import main
from smile_video.data.vos_layout import load_masks, read_vos_dataset
from smile_video.data.vos_synthetic import object_masks, write_davis_layout
from smile_video.eval.kmeans import kmeans
from smile_video.eval.vos import IGNORE, cluster_video, confusion, label_iou, match_clusters
from smile_video.eval.vos_job import window_starts


def test_kmeans_by_hand_and_against_sklearn():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 10.0], [10.0, 11.0]])
    labels, centroids, inertia = kmeans(x, 2, torch.Generator().manual_seed(0))
    assert labels[0] == labels[1] != labels[2] == labels[3]
    assert inertia == pytest.approx(4 * 0.25)  # every point 0.5 from its centroid
    assert sorted(centroids.tolist()) == [[0.0, 0.5], [10.0, 10.5]]
    cluster = pytest.importorskip("sklearn.cluster")
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 8, generator=g) * 6
    pts = torch.cat([c + torch.randn(30, 8, generator=g) for c in centres])  # (120, 8)
    ours, _, ours_inertia = kmeans(pts, 4, torch.Generator().manual_seed(0), n_init=3)
    ref = cluster.KMeans(4, init="k-means++", n_init=3, random_state=0).fit(pts.numpy())
    same_ours = ours[:, None] == ours[None, :]
    same_ref = torch.as_tensor(ref.labels_)[:, None] == torch.as_tensor(ref.labels_)[None, :]
    assert torch.equal(same_ours, same_ref)  # the same partition, labels up to a permutation
    assert ours_inertia == pytest.approx(ref.inertia_, rel=1e-4)
    with pytest.raises(ValueError, match="k=5"):
        kmeans(x, 5, torch.Generator())


def test_hungarian_matching_and_miou_by_hand():
    gt = torch.tensor([[0, 0, 1], [0, 1, 1]])
    pred = torch.tensor([[1, 1, 0], [1, 0, 2]])  # 3 clusters; cluster 2 is a piece of label 1
    conf = confusion(pred, gt, 3, 2)
    assert conf.tolist() == [[0, 2], [3, 0], [0, 1]]
    mapping = match_clusters(conf, "hungarian")
    assert mapping.tolist() == [1, 0, -1]  # one to one: cluster 2 is left over
    iou = label_iou(conf, mapping)
    assert iou.tolist() == pytest.approx([1.0, 2 / 3])  # label 1: 2 of its 3 pixels, nothing else predicted
    assert label_iou(conf, match_clusters(conf, "majority")).tolist() == [1.0, 1.0]  # many to one
    masked = torch.tensor([[0, 0, IGNORE], [0, 1, 1]])
    assert confusion(pred, masked, 3, 2).sum() == 5  # ignored pixels are not scored


def test_clustering_exact_features_recovers_the_masks():
    masks = torch.zeros(3, 8, 8, dtype=torch.long)
    masks[:, 1:4, 1:4] = 1
    masks[:, 5:8, 2:6] = 4  # ids need not be contiguous
    masks[0, 0, 0] = IGNORE
    feats = F.one_hot(masks.clamp(min=0), 5).float()  # (3, 8, 8, 5): an oracle encoder
    res = cluster_video(feats, masks, torch.Generator().manual_seed(0), overcluster_k=6)
    assert res["clustering"]["k"] == 3 and res["clustering"]["miou"] == pytest.approx(1.0)
    assert set(res["clustering"]["iou"]) == {"0", "1", "4"}
    assert res["overclustering"]["k"] == 6 and res["overclustering"]["miou"] <= 1.0
    with pytest.raises(ValueError, match="at least one object"):
        cluster_video(feats, torch.zeros_like(masks), torch.Generator())


def test_window_starts_cover_the_video():
    assert window_starts(10, 4) == [0, 4, 6]
    assert window_starts(8, 4) == [0, 4]
    assert window_starts(3, 4) == [0]


def test_object_masks_put_later_objects_on_top():
    alpha = torch.zeros(1, 2, 1, 2, 3)
    alpha[0, 0, 0, :, :2] = 1.0  # object 0 on columns 0-1
    alpha[0, 1, 0, :, 1:] = 0.6  # object 1 on columns 1-2, pasted over object 0
    alpha[0, 1, 0, 1, 2] = 0.4  # below half: not object 1
    assert object_masks(alpha)[0, 0].tolist() == [[1, 2, 2], [1, 2, 0]]


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    names = write_davis_layout(root, num_videos=2, num_frames=6, height=32, width=48, num_objects=2, seed=0)
    return root, names


def test_generated_set_reads_back_in_the_davis_layout(davis):
    root, names = davis
    videos = read_vos_dataset(root, "davis", "val")
    assert [v.name for v in videos] == names and all(len(v.frames) == 6 == len(v.masks) for v in videos)
    masks = load_masks([videos[0].masks[i] for i in range(6)], 32)
    assert set(masks.unique().tolist()) <= {0, 1, 2} and (masks > 0).any() and (masks == 0).any()
    from PIL import Image

    assert Image.open(videos[0].masks[0]).mode == "P"  # palette PNG as DAVIS ships


def test_readers_name_what_is_missing(davis, tmp_path):
    root, names = davis
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    shutil.rmtree(broken / "Annotations" / "480p" / names[1])
    with pytest.raises(ValueError, match=f"video '{names[1]}' has no masks"):
        read_vos_dataset(broken, "davis", "val")
    with pytest.raises(FileNotFoundError, match="ImageSets/2017/test.txt"):
        read_vos_dataset(root, "davis", "test")
    yt = tmp_path / "yt" / "train"
    shutil.copytree(root / "JPEGImages" / "480p", yt / "JPEGImages")
    shutil.copytree(root / "Annotations" / "480p", yt / "Annotations")
    for p in (yt / "Annotations" / names[0]).glob("*.png"):  # YouTube-VOS train: every 5th frame annotated
        if int(p.stem) % 5:
            p.unlink()
    videos = read_vos_dataset(tmp_path / "yt", "ytvos", "train")
    assert sorted(videos[0].masks) == [0, 5] and len(videos[0].frames) == 6


def test_smile_vos_end_to_end(davis, tmp_path):
    root, names = davis
    out = tmp_path / "run"
    rc = main(["vos", "--random-init", "--out", str(out), "--quiet", f"vos.root={root}", "vos.overcluster_k=5",
               "vos.kmeans_inits=1", "model.img_size=32", "model.patch_size=8", "model.num_frames=4",
               "model.embed_dim=32", "model.depth=2", "model.num_heads=2"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["videos"] == 2 and set(res["miou"]) == {"clustering", "overclustering"}
    assert all(0 <= v <= 100 for v in res["miou"].values())
    assert [r["scored_frames"] for r in res["per_video"]] == [6, 6]
    assert res["per_video"][0]["clustering"]["k"] == 3 and res["per_video"][0]["overclustering"]["k"] == 5
    assert main(["vos", "--random-init", "--out", str(tmp_path / "x"), "--quiet", "model.img_size=32"]) == 1  # no root
