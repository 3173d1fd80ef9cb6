"""eval/teacher_reference.py: the teacher's own targets, pooled and probed like an encoder's tokens."""

import dataclasses

import pytest
import torch

from smile_video.config import ProbeJob, TeacherConfig, load_config
from smile_video.data.normalize import normalize
from smile_video.eval import probe_job
from smile_video.eval import teacher_reference as ref
from smile_video.eval.benchmark import BenchmarkSpec, generate_benchmark
from smile_video.eval.features import clip_loader
from smile_video.teachers import build_teacher

SPEC = dict(num_frames=4, size=32, train_per_class=2, val_per_class=1, test_per_class=1, object_size=(0.3, 0.4))


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    lists = generate_benchmark(root, BenchmarkSpec(**SPEC), tasks=("appearance",))["appearance"]
    return load_config(ProbeJob, overrides=[
        "model.img_size=32", "model.num_frames=4", "model.patch_size=8", f"probe.train_list={lists.train}",
        f"probe.val_list={lists.val}", f"probe.test_list={lists.test}", f"probe.data_root={lists.root}",
        "probe.sampling_rate=1", "probe.epochs=3", "probe.lrs=[1.0e-2,1.0e-1]", "probe.repeats=2", "probe.flip=false"])


def test_teacher_tokens_undo_the_encoders_normalisation():
    cfg = load_config(ProbeJob, overrides=["model.img_size=32", "model.num_frames=4", "model.patch_size=8"])
    teacher = build_teacher(TeacherConfig(kind="embedded"), cfg.model)
    video = torch.randint(0, 256, (2, 3, 4, 32, 32), dtype=torch.uint8)
    got = ref.TeacherTokens(teacher)(normalize(video))  # what features._encode hands an encoder
    want = teacher(video)  # (B, N, D): the targets before teacher.target_norm
    assert got.shape == want.shape == (2, 2 * 4 * 4, teacher.dim)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_the_probe_reads_the_mean_pooled_targets_of_every_split(job, monkeypatch):
    teacher = build_teacher(TeacherConfig(kind="embedded"), job.model)
    seen = []
    real = probe_job.train_linear_probe  # the probes run through probe_job.probe_repeats

    def spy(train_feats, train_labels, val_feats, val_labels, p, g, **k):
        seen.append((train_feats, train_labels, val_feats, k["test_feats"]))
        return real(train_feats, train_labels, val_feats, val_labels, p, g, **k)

    monkeypatch.setattr(probe_job, "train_linear_probe", spy)
    out = ref.teacher_reference(job, teacher)
    # every split's features: the teacher's targets of its clips (centre view), mean over tokens, in list order
    for feats, path in ((seen[0][0], job.probe.train_list), (seen[0][2], job.probe.val_list),
                        (seen[0][3], job.probe.test_list)):
        batches = list(clip_loader(job.model, path, job.probe.data_root, 1, batch_size=8))
        want = torch.cat([teacher(b["video"]).mean(dim=1) for b in batches])  # (N, D)
        assert feats.shape == (len(want), 1, teacher.dim)
        torch.testing.assert_close(feats[:, 0], want, rtol=1e-4, atol=1e-4)
    assert len(seen) == job.probe.repeats == len(out["repeats"])
    assert 0.0 <= out["best"]["top1"] <= 100.0 and set(out["selected"]) >= {"val", "test", "lr", "epoch"}
    # the same config gives the same probes (seeded), from a config as well as from a built teacher
    again = ref.teacher_reference(job, TeacherConfig(kind="embedded"))
    assert again["best"] == out["best"] and again["best_lr"] == out["best_lr"]


def test_a_missing_list_is_refused_before_the_teacher_runs(job, tmp_path):
    bad = load_config(ProbeJob, overrides=[f"probe.train_list={tmp_path / 'none.csv'}",
                                           f"probe.val_list={job.probe.val_list}"])
    with pytest.raises(FileNotFoundError, match="none.csv"):
        ref.teacher_reference(bad, TeacherConfig(kind="embedded"))


def test_an_attentive_head_is_refused_before_the_teacher_runs(job, monkeypatch):
    monkeypatch.setattr(ref, "build_teacher", lambda *a, **k: pytest.fail("the teacher was built"))
    attentive = dataclasses.replace(job, probe=dataclasses.replace(job.probe, head="attentive"))
    with pytest.raises(ValueError, match="probe.head='attentive'"):
        ref.teacher_reference(attentive, TeacherConfig(kind="embedded"))
