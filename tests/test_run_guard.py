"""One run per directory (refuse / --resume / --overwrite), resumes checked against the saved config, and the
metrics of a resumed run holding each step once (issue 15, items 1 and 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_two_class_videos

from smile_video.cli import main
from smile_video.config import ConfigError, PretrainJob, load_config, save_config
from smile_video.eval.features import file_digest
from smile_video.run_guard import (
    LOCK_NAME,
    RunDirError,
    claim_run_dir,
    holding_run_dir,
    lock_for_resume,
    lock_run_dir,
    release_run_dir,
    releases_run_dir,
    resume_changes,
)
from smile_video.runlog import read_metrics, truncate_metrics

# 4 steps: 2 batches of 4 a pass, progressive 1 + 1 epochs; checkpoints at the end of each stage (steps 2 and 4).
# Pixel targets and no motion keep it fast; what is tested is the run directory, not the method.
TINY = ["model.preset=tiny", "model.img_size=32", "model.num_frames=4", "model.depth=1", "mask.ratio=0.75",
        "teacher.kind=pixel", "motion.enabled=false", "data.epoch_size=8", "train.batch_size=4", "train.lr=1e-3",
        "train.log_every=1", "--quiet"]


def steps(run: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]


# ----------------------------------------------------------------------------------------------------- claim_run_dir
def test_a_folder_that_holds_files_is_refused_naming_both_ways_out(tmp_path):
    run = tmp_path / "run"
    assert claim_run_dir(run, resume=False, overwrite=False) is False  # missing: fine (created, locked)
    release_run_dir(run)
    assert [p.name for p in run.iterdir()] == [LOCK_NAME]
    assert claim_run_dir(run, resume=False, overwrite=False) is False  # empty: fine
    (run / "config.yaml").write_text("{}\n")
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError) as e:
        claim_run_dir(run, resume=False, overwrite=False)
    assert str(run) in str(e.value) and "--resume auto" in str(e.value) and "--overwrite" in str(e.value)
    with pytest.raises(RunDirError, match="exclude each other"):
        claim_run_dir(run, resume=True, overwrite=True, resumable=True)
    assert claim_run_dir(run, resume=True, overwrite=False, resumable=True) is False  # continue it: untouched
    assert (run / "metrics.jsonl").is_file()


def test_overwrite_empties_only_a_smile_run_and_keeps_named_caches(tmp_path):
    run = tmp_path / "run"
    (run / "features").mkdir(parents=True)
    (run / "features" / "train-abc.safetensors").write_text("cache")
    (run / "checkpoints" / "step_00000002").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="not a smile run directory"):  # no config.yaml: never deleted
        claim_run_dir(run, resume=False, overwrite=True, keep=("features",))
    assert (run / "metrics.jsonl").is_file()
    (run / "config.yaml").write_text("{}\n")
    assert claim_run_dir(run, resume=False, overwrite=True, keep=("features",)) is True
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME, "features"]
    assert (run / "features" / "train-abc.safetensors").read_text() == "cache"
    # a resume with nothing to resume yet (killed before the first checkpoint) starts clean too
    (run / "config.yaml").write_text("{}\n")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    assert claim_run_dir(run, resume=True, overwrite=False, resumable=False) is True
    assert not (run / "metrics.jsonl").exists()


def test_truncate_metrics_drops_the_steps_a_resume_redoes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        {"event": "stage_start", "step": 0}, {"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.9},
        {"event": "stage_end", "step": 2}, {"step": 3, "loss": 0.8}, {"note": "no step"})) + '{"step": 4, "lo')
    assert truncate_metrics(path, 2) == 2  # step 3 and the line cut short by the kill
    assert [r.get("step") for r in read_metrics(path)] == [0, 1, 2, 2, None]


# ---------------------------------------------------------------------------------------------------- resume_changes
def test_resume_changes_allow_safe_keys_refuse_the_rest_and_can_be_forced(tmp_path):
    saved = tmp_path / "config.yaml"
    save_config(load_config(PretrainJob, overrides=["data.epoch_size=8"]), saved)
    safe = ("run.*", "train.log_every")
    same = load_config(PretrainJob, overrides=["data.epoch_size=8", "run.quiet=true", "train.log_every=5"])
    assert resume_changes(saved, same, safe, force=False) == [("run.quiet", False, True), ("train.log_every", 1, 5)]
    changed = load_config(PretrainJob, overrides=["data.epoch_size=16", "train.log_every=5"])
    with pytest.raises(ConfigError) as e:
        resume_changes(saved, changed, safe, force=False)
    msg = str(e.value)
    assert "data.epoch_size: 8 -> 16" in msg and "--force-resume" in msg and "log_every" not in msg
    assert ("data.epoch_size", 8, 16) in resume_changes(saved, changed, safe, force=True)
    # a key an older version did not write counts as its default
    text = saved.read_text().replace("  epoch_size: 8\n", "")
    saved.write_text(text)
    assert resume_changes(saved, load_config(PretrainJob), safe, force=False) == []


# ------------------------------------------------------------------------------------------------------ the verbs
def test_pretrain_refuses_a_second_run_resumes_checked_and_overwrites_clean(tmp_path, capsys):
    out = tmp_path / "pt1"
    assert main(["pretrain", *TINY, "--out", str(out)]) == 0
    assert steps(out) == [1, 2, 3, 4]
    before = (out / "metrics.jsonl").read_text()

    assert main(["pretrain", *TINY, "--out", str(out)]) == 1  # again, without --resume: refused, nothing appended
    err = capsys.readouterr().err
    assert str(out) in err and "--resume auto" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "metrics.jsonl").read_text() == before

    # a resume whose plan changed is refused before any work, naming the key; the saved config is kept
    assert main(["pretrain", *TINY, "data.epoch_size=16", "--out", str(out), "--resume", "auto"]) == 2
    err = capsys.readouterr().err
    assert "data.epoch_size: 8 -> 16" in err and "--force-resume" in err
    assert (out / "metrics.jsonl").read_text() == before and "epoch_size: 8" in (out / "config.yaml").read_text()

    # forced: continues at step 4 of the new 8-step plan, and says so in the metrics
    assert main(["pretrain", *TINY, "data.epoch_size=16", "--out", str(out), "--resume", "auto",
                 "--force-resume"]) == 0
    change = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "config_change"]
    assert change and change[0]["forced"] and change[0]["changes"]["data.epoch_size"] == [8, 16]
    assert steps(out) == [1, 2, 3, 4, 5, 6, 7, 8]

    assert main(["pretrain", *TINY, "--out", str(out), "--overwrite"]) == 0  # a new run: only its own records
    assert steps(out) == [1, 2, 3, 4]
    assert not [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") in ("resume", "config_change")]


# ------------------------------------------------------------------------------------------- one process per folder
class Holder:
    """Another process that takes the lock of `path` and keeps it until `release()` (it reads stdin until EOF)."""

    def __init__(self, path: Path):
        code = ("import sys; from smile_video.run_guard import lock_run_dir; lock_run_dir(sys.argv[1]); "
                "print('locked', flush=True); sys.stdin.read()")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


def assert_other_process_is_refused(path: Path) -> None:
    """Another process that tries to lock `path` fails, saying the folder is in use."""
    other = subprocess.run([sys.executable, "-c", "import sys; from smile_video.run_guard import lock_run_dir; "
                            "lock_run_dir(sys.argv[1])", str(path)], capture_output=True, text=True)
    assert other.returncode != 0 and "in use by another smile process" in other.stderr


def test_a_folder_another_process_writes_into_is_refused_whatever_the_flags(tmp_path):
    run = tmp_path / "run"
    holder = Holder(run)
    try:
        for flags in (dict(resume=False, overwrite=False), dict(resume=True, overwrite=False, resumable=True),
                      dict(resume=False, overwrite=True)):
            with pytest.raises(RunDirError, match=rf"in use by another smile process \(pid {holder.proc.pid}"):
                claim_run_dir(run, **flags)
    finally:
        holder.release()
    assert claim_run_dir(run, resume=False, overwrite=False) is False  # the holder ended: the OS freed its lock
    release_run_dir(run)


def test_the_lock_file_is_not_a_run_file_and_the_same_process_may_claim_again(tmp_path):
    run = tmp_path / "run"
    with holding_run_dir(run):
        assert (run / LOCK_NAME).is_file()
        assert claim_run_dir(run, resume=False, overwrite=False) is False  # only the lock file there: an empty folder
        (run / "config.yaml").write_text("{}\n")
        assert claim_run_dir(run, resume=False, overwrite=True) is True  # this process holds it: no refusal
        assert [p.name for p in run.iterdir()] == [LOCK_NAME]  # overwrite removed the run, not the lock
    holder = Holder(run)  # released at the block's end: another process can take it
    holder.release()


def test_a_job_releases_its_lock_when_it_returns_or_raises(tmp_path):
    class Cfg:
        class run:
            out_dir = tmp_path / "run"

    @releases_run_dir
    def job(cfg, fail):
        claim_run_dir(cfg.run.out_dir, resume=False, overwrite=False)
        if fail:
            raise RuntimeError("the job failed")
        return "done"

    assert job(Cfg, False) == "done"
    Holder(Cfg.run.out_dir).release()  # free again
    with pytest.raises(RuntimeError):
        job(Cfg, True)
    Holder(Cfg.run.out_dir).release()
    lock_run_dir(Cfg.run.out_dir)  # held before the job: the job leaves it held
    job(Cfg, False)
    assert_other_process_is_refused(Cfg.run.out_dir)
    release_run_dir(Cfg.run.out_dir)


def test_pretrain_into_a_folder_another_process_holds_is_refused_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "pt"
    holder = Holder(out)
    try:
        assert main(["pretrain", *TINY, "--out", str(out)]) == 1
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert "in use by another smile process" in err and str(holder.proc.pid) in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert main(["pretrain", *TINY, "--out", str(out)]) == 0  # once it has ended, the folder is free
    Holder(out).release()  # and the finished job released it


def test_a_checkpoint_digest_ignores_the_lock_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = file_digest(tmp_path)
    with holding_run_dir(tmp_path):
        assert file_digest(tmp_path) == before


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    lines = write_two_class_videos(root, 6, base=40, step=10, top=10, still_x=10, still_value=90)
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[:4]) + "\n")
    return root


ENCODER = ["model.img_size=32", "model.num_frames=4", "model.embed_dim=32", "model.depth=1", "model.num_heads=2"]


def test_probe_refuses_a_second_run_and_overwrite_keeps_the_feature_cache(lists, tmp_path, capsys):
    out = tmp_path / "probe"
    args = ["probe", "--random-init", "--out", str(out), "--quiet", f"probe.train_list={lists / 'train.txt'}",
            f"probe.val_list={lists / 'val.txt'}", "probe.sampling_rate=2", "probe.epochs=2", *ENCODER]
    assert main(args) == 0
    stamps = sorted(p.stat().st_mtime_ns for p in (out / "features").iterdir())
    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "--resume" not in err  # the probe does not resume
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in (out / "features").iterdir()) == stamps  # cache reused
    assert len([r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "probe"]) == 2  # one run's epochs


def test_finetune_resume_with_another_recipe_is_refused(lists, tmp_path, capsys):
    out = tmp_path / "ft"
    args = ["finetune", "--random-init", "--out", str(out), "--quiet", f"finetune.train_list={lists / 'train.txt'}",
            f"finetune.val_list={lists / 'val.txt'}", "finetune.batch_size=2", "finetune.epochs=1",
            "finetune.sampling_rate=2", "finetune.test_clips=1", "finetune.test_crops=1", *ENCODER]
    assert main(args) == 0
    assert main(args) == 1 and "--resume auto" in capsys.readouterr().err
    assert main([*args, "--resume", "auto", "finetune.lr=0.5"]) == 2
    assert "finetune.lr: 0.001 -> 0.5" in capsys.readouterr().err
    assert main([*args, "--resume", "auto", "finetune.num_workers=0", "train.log_every=3"]) == 0  # safe: logged
    change = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "config_change"]
    assert change and change[0]["changes"]["train.log_every"] == [1, 3]


def test_knn_has_its_own_default_run_directory():
    from smile_video.config import KnnJob, ProbeJob

    assert load_config(KnnJob).run.out_dir == "runs/knn" != load_config(ProbeJob).run.out_dir


def test_demo_claims_its_folder(tmp_path):
    from smile_video.eval.demo import DemoSettings, _claim

    out = tmp_path / "demo"
    _claim(DemoSettings(out=out, epochs=2))
    assert json.loads((out / "demo.json").read_text())["epochs"] == 2
    (out / "report").mkdir()
    with pytest.raises(RunDirError, match="--resume .*--overwrite"):
        _claim(DemoSettings(out=out, epochs=2))
    with pytest.raises(RunDirError, match="epochs: 2 -> 3"):
        _claim(DemoSettings(out=out, epochs=3, resume=True))
    _claim(DemoSettings(out=out, epochs=2, resume=True))
    assert (out / "report").is_dir()
    _claim(DemoSettings(out=out, epochs=3, overwrite=True))
    assert not (out / "report").exists() and json.loads((out / "demo.json").read_text())["epochs"] == 3


def test_lock_for_resume_locks_an_existing_folder_on_a_resume_and_creates_nothing(tmp_path):
    run = tmp_path / "run"
    assert lock_for_resume(run, "auto") is False and not run.exists()  # missing: the resume fails later, uncreated
    run.mkdir()
    assert lock_for_resume(run, "") is False and not (run / LOCK_NAME).exists()  # no resume asked: untouched
    assert lock_for_resume(run, "auto", is_main=False) is False  # other ranks never lock
    holder = Holder(run)
    try:
        with pytest.raises(RunDirError, match=rf"pid {holder.proc.pid}"):
            lock_for_resume(run, "auto")
    finally:
        holder.release()
    assert lock_for_resume(run, "auto") is True
    assert_other_process_is_refused(run)
    release_run_dir(run)
