"""eval/study.py: seed statistics and the paper-direction verdicts."""

import json
import math

import pytest

from smile_video.eval import study
from smile_video.eval.study import SMILE, directions_table, mean_std, results_table, summarize


def test_mean_std_is_the_sample_std():
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def _run(motion, appearance):
    return {"motion": {"probe": motion, "finetune": motion, "knn": motion},
            "appearance": {"probe": appearance, "finetune": appearance, "knn": appearance},
            "stats": {"similarity_raw": 0.9, "similarity_centred": 0.5}}


def test_directions_verdicts_follow_the_seed_spread():
    runs = {f"random init|{s}": _run(12.0 + s, 13.0) for s in range(3)}  # motion std 1.0
    runs.update({f"{SMILE}|{s}": _run(30.0 + s, 13.5) for s in range(3)})
    summary = summarize(runs)
    assert summary[SMILE]["motion/probe"][:2] == (31.0, 1.0)
    rows = [r for r in directions_table(summary) if r.startswith("| ours: synthetic (dead leaves) + motion")]
    motion = [r for r in rows if "motion/probe" in r][0]
    appearance = [r for r in rows if "appearance/probe" in r][0]
    assert "+18.0" in motion and "| reproduced |" in motion
    assert "+0.5" in appearance and "| reproduced |" in appearance  # both stds 0: any gain is beyond noise
    runs.update({f"{SMILE}|{s}": _run(30.0 + s, 10.0) for s in range(3)})
    rows = directions_table(summarize(runs))
    assert any("appearance/probe" in r and "not reproduced" in r for r in rows)
    table = results_table(summarize(runs))
    assert table[0].startswith("| variant |") and any(r.startswith(f"| {SMILE} |") for r in table)


def test_study_model_overrides_reach_every_variants_student(tmp_path, monkeypatch):
    import smile_video.engine.pretrain as engine

    seen = []

    def fake_pretrain(cfg):  # records the resolved config instead of training
        seen.append(cfg)
        return tmp_path / "run"

    monkeypatch.setattr(engine, "pretrain", fake_pretrain)
    size = ["model.depth=6", "model.embed_dim=192", "model.num_heads=6"]
    s = study.StudySettings(out=tmp_path, model=size)
    assert study.pretrain_variant(study.SMILE, 0, s) == tmp_path / "run" / "model"
    assert study.pretrain_variant("dead leaves + motion, pixels", 0, s) == tmp_path / "run" / "model"
    for cfg in seen:
        assert (cfg.model.depth, cfg.model.embed_dim, cfg.model.num_heads, cfg.model.patch_size) == (6, 192, 6, 8)
    assert seen[1].teacher.kind == "pixel"  # the variant's own change still applies on top
    default = study.StudySettings(out=tmp_path / "tiny")
    study.pretrain_variant(study.SMILE, 0, default)
    assert (seen[2].model.depth, seen[2].model.embed_dim) == (4, 128)


def test_every_variant_resolves_to_a_valid_config_with_its_change(tmp_path, monkeypatch):
    import smile_video.engine.pretrain as engine

    seen = {}
    monkeypatch.setattr(engine, "pretrain", lambda cfg: seen.setdefault(cfg.run.out_dir, cfg) and tmp_path)
    settings = study.StudySettings(out=tmp_path)
    for name, over in study.VARIANTS.items():
        if over is None:
            assert study.pretrain_variant(name, 0, settings) is None  # random init: nothing to pretrain
            continue
        study.pretrain_variant(name, 0, settings)
        cfg = next(c for d, c in seen.items() if study._slug(name) in d)
        for item in over:  # the variant's own overrides are what the resolved config says
            section, _, rest = item.partition(".")
            key, _, value = rest.partition("=")
            assert str(getattr(getattr(cfg, section), key)).lower() == value.lower(), (name, item)
    assert seen and all(c.teacher.visible_weight == 0 for d, c in seen.items() if "visible" not in d)


def test_random_init_is_the_recipes_own_encoder_architecture():
    """The random init that probing and finetuning build (no checkpoint: the recipes' model keys) must be the encoder
    the pretraining recipe trains, positions included (it was flat while the recipe was separable, session 13)."""
    from smile_video.config import FinetuneJob, PretrainJob, ProbeJob, load_config

    encoder_fields = ("img_size", "num_frames", "patch_size", "tubelet_size", "in_chans", "embed_dim", "depth",
                      "num_heads", "mlp_ratio", "pos_embed")
    pretrained = load_config(PretrainJob, overrides=study.PRETRAIN_RECIPE).model
    for job, recipe in ((ProbeJob, study.PROBE_RECIPE), (FinetuneJob, study.FINETUNE_RECIPE)):
        random_init = load_config(job, overrides=recipe).model
        for name in encoder_fields:
            assert getattr(random_init, name) == getattr(pretrained, name), (job.__name__, name)
    assert pretrained.pos_embed == "separable"


def test_study_model_overrides_must_be_model_keys(tmp_path):
    with pytest.raises(ValueError, match="train.lr=1"):
        study.StudySettings(out=tmp_path, model=["train.lr=1"])


def test_a_study_folder_refuses_other_settings_before_any_work(tmp_path, monkeypatch):
    import smile_video.eval.benchmark as benchmark

    s = study.StudySettings(out=tmp_path, model=["model.depth=6"])
    study.claim_study_dir(s)
    study.claim_study_dir(study.StudySettings(out=tmp_path, model=["model.depth=6"], seeds=[3]))  # seeds may grow
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["model"] == ["model.depth=6"] and saved["probe_repeats"] == 5

    def no_work(*a, **k):
        raise AssertionError("the benchmark was generated before the settings were checked")

    monkeypatch.setattr(benchmark, "generate_benchmark", no_work)
    with pytest.raises(ValueError, match=r"model: \['model.depth=6'\] there, \[\] now"):
        study.run_study(study.StudySettings(out=tmp_path))
    with pytest.raises(ValueError, match="probe_repeats: 5 there, 1 now"):
        study.run_study(study.StudySettings(out=tmp_path, model=["model.depth=6"], probe_repeats=1))
    # the recipes are recorded too: a folder measured under another probe recipe (e.g. another random init's
    # positions), or recorded before the recipes were, is refused
    monkeypatch.setattr(study, "PROBE_RECIPE", [*study.PROBE_RECIPE, "model.pos_embed=flat"])
    with pytest.raises(ValueError, match="recipes: .*model.pos_embed=flat"):
        study.run_study(study.StudySettings(out=tmp_path, model=["model.depth=6"]))
    monkeypatch.undo()
    monkeypatch.setattr(benchmark, "generate_benchmark", no_work)
    del saved["recipes"]
    (tmp_path / "study.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="recipes: 'not recorded"):
        study.run_study(study.StudySettings(out=tmp_path, model=["model.depth=6"]))


def _fake_evaluation(monkeypatch, scores):
    """evaluate_checkpoint with probes, kNN, finetuning and feature statistics replaced by fakes; finetuning at base
    lr `lr` scores `scores[lr]` = (final val top-1, test top-1) and records the config it was given."""
    import torch

    import smile_video.eval.diagnostics as diagnostics
    import smile_video.eval.features as features
    import smile_video.eval.finetune as finetune
    import smile_video.eval.probe_job as probe_job

    runs = []

    def fake_finetune(cfg, ckpt):
        runs.append(cfg)
        val, test = scores[cfg.finetune.lr]
        return {"final": {"top1": val}, "test": {"top1": test}}

    fake_probe = {"best": {"top1": 1.0}, "selected": {"val": {"top1": 1.0}}}
    monkeypatch.setattr(finetune, "finetune", fake_finetune)
    monkeypatch.setattr(probe_job, "run_probe", lambda cfg, ckpt: fake_probe)
    monkeypatch.setattr(probe_job, "run_knn", lambda cfg, ckpt: {"top1": 1.0})
    monkeypatch.setattr(features, "encoder_tokens", lambda *a, **k: (torch.zeros(2, 256, 8), None))
    monkeypatch.setattr(diagnostics, "feature_stats", lambda tokens, grid: {})
    monkeypatch.setattr(diagnostics, "centred_frame_similarity", lambda tokens, grid: torch.zeros(2, 4, 4))
    return runs


def _tasks(tmp_path):
    from smile_video.eval.benchmark import TaskLists

    return {"motion": TaskLists(train=tmp_path / "train.csv", val=tmp_path / "val.csv", test=tmp_path / "test.csv",
                                classes=["a", "b"], root=tmp_path)}


def test_finetune_lr_grid_reports_the_lr_best_on_val_not_on_test(tmp_path, monkeypatch):
    recipe_lr = 1e-2
    scores = {1e-3: (50.0, 90.0), 3e-3: (70.0, 60.0), recipe_lr: (70.0, 80.0)}  # test would pick 1e-3
    runs = _fake_evaluation(monkeypatch, scores)
    r = study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval", 0, finetune=True, attentive=False,
                                  finetune_lrs=(1e-3, 3e-3, 1e-2))
    m = r["motion"]
    assert m["finetune_lr"] == 3e-3 and (m["finetune_val"], m["finetune"]) == (70.0, 60.0)  # a tie: the first listed
    assert m["finetune_grid"] == {"0.001": {"val": 50.0, "test": 90.0}, "0.003": {"val": 70.0, "test": 60.0},
                                  "0.01": {"val": 70.0, "test": 80.0}}
    assert [c.finetune.lr for c in runs] == [1e-3, 3e-3, 1e-2]
    assert [c.run.out_dir.rsplit("/", 1)[-1] for c in runs] == ["finetune_lr0.001", "finetune_lr0.003",
                                                                "finetune_lr0.01"]
    # two lrs equal to six significant digits would share a run directory and a grid key: refused before any run
    runs.clear()
    with pytest.raises(ValueError, match="first six significant digits"):
        study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval3", 0, finetune_lrs=(1e-3, 1.0000001e-3))
    assert runs == []
    # without a grid: the recipe's lr, its own directory, no grid keys
    r = study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval2", 0, attentive=False)
    assert [c.finetune.lr for c in runs] == [recipe_lr] and runs[0].run.out_dir.endswith("/finetune")
    assert (r["motion"]["finetune"], r["motion"]["finetune_val"]) == (80.0, 70.0)
    assert "finetune_lr" not in r["motion"] and "finetune_grid" not in r["motion"]


def test_finetune_lrs_setting_is_checked_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="finetune_lrs"):
        study.StudySettings(out=tmp_path, finetune_lrs=[1e-3, -1.0])
    with pytest.raises(ValueError, match="finetune_lrs"):
        study.StudySettings(out=tmp_path, finetune_lrs=[1e-3, 1e-3])
    with pytest.raises(ValueError, match="finetune_lrs"):
        study.StudySettings(out=tmp_path, finetune_lrs=[1e-3, 1.0000001e-3])  # one grid key
    old = tmp_path / "old"  # a folder recorded before the key existed reads as the default (no grid)
    old.mkdir()
    study.claim_study_dir(study.StudySettings(out=old))
    record = json.loads((old / "study.json").read_text())
    assert record["finetune_lrs"] == []
    del record["finetune_lrs"]
    (old / "study.json").write_text(json.dumps(record))
    study.claim_study_dir(study.StudySettings(out=old))
    with pytest.raises(ValueError, match=r"finetune_lrs: \[\] there, \[0.001, 0.01\] now"):
        study.claim_study_dir(study.StudySettings(out=old, finetune_lrs=[1e-3, 1e-2]))


def test_gpu_scale_reaches_every_variants_student_and_keeps_the_recipe(tmp_path, monkeypatch):
    import smile_video.engine.pretrain as engine

    seen = []
    monkeypatch.setattr(engine, "pretrain", lambda cfg: seen.append(cfg) or tmp_path / "run")
    s = study.StudySettings(out=tmp_path, **study.GPU_SCALE)
    assert s.variants == ["random init", SMILE]
    study.pretrain_variant(SMILE, 0, s)
    study.pretrain_variant("dead leaves + motion, pixels", 0, s)
    for cfg in seen:
        m = cfg.model
        assert (m.preset, m.depth, m.embed_dim, m.num_frames, m.img_size, m.patch_size) == ("vit_s", 12, 384, 16,
                                                                                           112, 16)
        assert m.grid == (8, 7, 7) and m.decoder_input_norm == "batch" and m.pos_embed == "separable"
        assert cfg.data.num_workers == 12 and cfg.data.background == "deadleaves"
    assert (seen[0].teacher.kind, seen[1].teacher.kind) == ("embedded", "pixel")
    # the random init the probes and finetuning build is the same ViT-S
    assert (s.student().embed_dim, s.student().num_frames, s.student().patch_size) == (384, 16, 16)
    study.pretrain_variant(SMILE, 0, study.StudySettings(out=tmp_path / "cpu"))
    assert seen[2].data.num_workers == -1 and seen[2].model.embed_dim == 128  # the CPU study as it was


def test_evaluation_reads_the_clips_at_the_settings_stride(tmp_path, monkeypatch):
    import smile_video.eval.features as features
    import smile_video.eval.probe_job as probe_job

    runs = _fake_evaluation(monkeypatch, {1e-2: (70.0, 80.0)})
    probes, token_calls = [], []
    fake_probe = {"best": {"top1": 1.0}, "selected": {"val": {"top1": 1.0}}}
    monkeypatch.setattr(probe_job, "run_probe", lambda cfg, ckpt: probes.append(cfg) or fake_probe)
    fake_tokens = features.encoder_tokens

    def tokens(*a, **k):
        token_calls.append(k)
        return fake_tokens(*a, **k)

    monkeypatch.setattr(features, "encoder_tokens", tokens)
    study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval", 0, attentive=False, sampling_rate=1)
    assert [c.probe.sampling_rate for c in probes] == [1] and runs[0].finetune.sampling_rate == 1
    assert token_calls[0]["sampling_rate"] == 1
    probes.clear()
    study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval2", 0, attentive=False)
    assert [c.probe.sampling_rate for c in probes] == [2] and runs[1].finetune.sampling_rate == 2  # the recipes'
    with pytest.raises(ValueError, match="sampling_rate"):
        study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval3", 0, sampling_rate=0)


def test_the_study_renders_its_benchmark_at_the_settings_size_and_refuses_clips_too_short(tmp_path, monkeypatch):
    import smile_video.eval.benchmark as benchmark

    specs = []

    class Stop(Exception):
        pass

    def capture(root, spec, *a, **k):
        specs.append(spec)
        raise Stop

    monkeypatch.setattr(benchmark, "generate_benchmark", capture)
    with pytest.raises(Stop):
        study.run_study(study.StudySettings(out=tmp_path / "gpu", **study.GPU_SCALE))
    with pytest.raises(Stop):
        study.run_study(study.StudySettings(out=tmp_path / "cpu"))
    assert [(sp.num_frames, sp.size) for sp in specs] == [(16, 112), (16, 64)]
    assert json.loads((tmp_path / "gpu" / "study.json").read_text())["sampling_rate"] == 1
    # 16 frames at stride 2 do not fit in a 16-frame clip: refused before the folder is claimed or anything rendered
    short = study.StudySettings(out=tmp_path / "short", **{**study.GPU_SCALE, "sampling_rate": 2})
    with pytest.raises(ValueError, match="16 frames at stride 2 .* a benchmark clip has 16"):
        study.run_study(short)
    assert len(specs) == 2 and not (tmp_path / "short" / "study.json").exists()
    for bad in ({"benchmark_size": 0}, {"sampling_rate": 0}, {"num_workers": -2}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            study.StudySettings(out=tmp_path, **bad)


def test_the_study_probes_every_run_before_finetuning_any_and_resumes_a_cut_run(tmp_path, monkeypatch):
    """A study cut short (a time limit on a lent GPU) keeps every seed's probe cells: all (seed, variant) runs are
    probed before the first finetuning; a rerun finetunes only what is missing and merges it into the same run."""
    import smile_video.eval.benchmark as benchmark

    calls, cut = [], [2]  # the time limit strikes during the second finetuning of the first run

    class TimeLimit(Exception):
        pass

    def fake_evaluate(ckpt, tasks, out, seed, *a, finetune=True, probes=True, **k):
        calls.append(("probe" if probes else "finetune", out.parent.name, seed))
        if probes:
            return {"motion": {"probe": 10.0 + seed}, "stats": {}}
        if cut and sum(c[0] == "finetune" for c in calls) == cut[0]:
            cut.clear()
            raise TimeLimit
        return {"motion": {"finetune": 50.0 + seed, "finetune_val": 60.0}}

    monkeypatch.setattr(benchmark, "generate_benchmark", lambda root, spec: {})
    monkeypatch.setattr(study, "pretrain_variant", lambda name, seed, settings: None)
    monkeypatch.setattr(study, "evaluate_checkpoint", fake_evaluate)
    s = study.StudySettings(out=tmp_path, seeds=[0, 1], variants=["random init", SMILE], finetune_tasks=("motion",))
    with pytest.raises(TimeLimit):
        study.run_study(s, log=lambda *_: None)
    assert [c[0] for c in calls] == ["probe"] * 4 + ["finetune"] * 2  # every probe before any finetuning
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved) == 4 and [saved[k]["finetuned"] for k in saved] == [True, False, False, False]
    assert saved["random init|0"]["motion"] == {"probe": 10.0, "finetune": 50.0, "finetune_val": 60.0}
    calls.clear()
    runs = study.run_study(s, log=lambda *_: None)  # the rerun: no probe again, the three missing finetunings
    assert [c[0] for c in calls] == ["finetune"] * 3
    assert all(r["finetuned"] and r["motion"]["finetune"] == 50.0 + int(k[-1]) for k, r in runs.items())
    assert all(r["motion"]["probe"] == 10.0 + int(k[-1]) for k, r in runs.items())
    # a run recorded in one pass, before this order (no "finetuned"), counts as complete
    old = {k: {kk: v for kk, v in r.items() if kk != "finetuned"} for k, r in runs.items()}
    (tmp_path / "results.json").write_text(json.dumps(old))
    calls.clear()
    study.run_study(s, log=lambda *_: None)
    assert calls == []


def test_the_study_reports_a_time_pooled_probe_and_the_motion_readout_beside_its_cells(tmp_path, monkeypatch):
    import smile_video.eval.probe_job as probe_job

    _fake_evaluation(monkeypatch, {1e-2: (70.0, 80.0)})
    probes, readouts = [], []

    def fake_probe(cfg, ckpt):
        probes.append(cfg)
        top1 = 40.0 if cfg.probe.pooling == "time" else 20.0
        return {"best": {"top1": top1}, "selected": {"val": {"top1": top1 + 1}}}

    monkeypatch.setattr(probe_job, "run_probe", fake_probe)
    fake_r2 = {"object": {"direction": 0.2, "position": 0.9, "translation": 0.3},
               "mean": {"direction": 0.1, "position": 0.8, "translation": 0.2}}
    monkeypatch.setattr(study, "encoder_readout", lambda *a: readouts.append(a) or fake_r2)
    r = study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval", 3, finetune=False, attentive=False,
                                  time_probe=True, readout_clips=64)
    assert [c.probe.pooling for c in probes] == ["mean", "time"]
    assert probes[1].run.out_dir.endswith("/probe_time")
    assert (r["motion"]["probe"], r["motion"]["probe_time"], r["motion"]["probe_time_val"]) == (20.0, 40.0, 41.0)
    assert r["readout"] == fake_r2 and readouts[0][2:] == (3, 64)  # the encoder's seed, the clip count
    runs = {f"random init|{s}": r for s in range(2)}
    summary = summarize(runs)
    assert summary["random init"]["motion/probe_time"][:2] == (40.0, 0.0)
    assert summary["random init"]["readout_direction_object"][:2] == (0.2, 0.0)
    assert summary["random init"]["readout_translation_object"][:2] == (0.3, 0.0)
    table = results_table(summary)
    assert "motion/probe_time" in table[0] and "readout_direction_object" in table[0] and "0.200 ± 0.000" in table[2]
    probes.clear()
    study.evaluate_checkpoint(None, _tasks(tmp_path), tmp_path / "eval2", 3, finetune=False, attentive=False)
    assert [c.probe.pooling for c in probes] == ["mean"] and len(readouts) == 1  # both off by default
    with pytest.raises(ValueError, match="readout_clips"):
        study.StudySettings(out=tmp_path, readout_clips=-1)


def test_the_readout_column_reads_the_same_clips_for_every_encoder():
    cfg = study.student_config()
    a = study.encoder_readout(None, cfg, 0, 8)
    assert a == study.encoder_readout(None, cfg, 0, 8)  # deterministic: the same clips, the same random init
    b = study.encoder_readout(None, cfg, 1, 8)  # another random init on the same clips
    assert set(a) == {"mean", "object", "time"} and a["object"].keys() == b["object"].keys()
    assert a["object"]["position"] != b["object"]["position"]


def test_the_plot_draws_only_the_groups_some_variant_has(tmp_path):
    summary = {"random init": {"motion/probe": (17.0, 1.0, 3), "motion/knn": (16.0, 2.0, 3)},
               SMILE: {"motion/probe": (37.0, 1.3, 3), "appearance/probe": (22.0, 2.3, 3)}}
    assert study.plotted_groups(summary) == ["motion/probe", "appearance/probe"]  # no empty finetune groups, no kNN
    study.plot_study(summary, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
