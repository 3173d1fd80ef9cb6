"""Typed configuration: presets, YAML + overrides, and the errors a user sees."""

from pathlib import Path

import pytest
import yaml

from smile_video.config import (
    MODEL_PRESETS,
    ConfigError,
    FinetuneJob,
    PretrainJob,
    ProbeJob,
    load_config,
    save_config,
)

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_resolve_to_the_tiny_preset():
    cfg = load_config(PretrainJob)
    for key, value in MODEL_PRESETS["tiny"].items():
        assert getattr(cfg.model, key) == value
    assert cfg.model.grid == (4, 4, 4)
    assert cfg.model.num_tokens == 64


def test_preset_then_overrides_win():
    cfg = load_config(PretrainJob, overrides=["model.preset=vit_b", "model.depth=3", "train.lr=1e-3"])
    assert cfg.model.embed_dim == 768 and cfg.model.decoder_dim == 384
    assert cfg.model.depth == 3
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.grid == (8, 14, 14)


def test_unknown_key_names_it_and_suggests_the_closest():
    with pytest.raises(ConfigError) as e:
        load_config(PretrainJob, overrides=["model.depht=3"])
    assert "model.depht" in str(e.value)
    assert "model.depth" in str(e.value)


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match="modle"):
        load_config(PretrainJob, overrides=["modle.depth=3"])


@pytest.mark.parametrize("override, key, typename", [
    ("train.lr=abc", "train.lr", "float"),
    ("model.depth=2.5", "model.depth", "int"),
    ("motion.enabled=maybe", "motion.enabled", "bool"),
    ("data.crop_scales=1.0", "data.crop_scales", "list[float]"),
])
def test_wrong_type_names_key_and_expected_type(override, key, typename):
    with pytest.raises(ConfigError) as e:
        load_config(PretrainJob, overrides=[override])
    assert key in str(e.value) and typename in str(e.value)


def test_bad_values_are_rejected():
    with pytest.raises(ConfigError, match="mask.kind"):
        load_config(PretrainJob, overrides=["mask.kind=tubes"])
    with pytest.raises(ConfigError, match="model.img_size"):
        load_config(PretrainJob, overrides=["model.img_size=70"])
    with pytest.raises(ConfigError, match="teacher.weights"):
        load_config(PretrainJob, overrides=["teacher.kind=clip"])
    with pytest.raises(ConfigError, match="mask.ratio"):
        load_config(PretrainJob, overrides=["mask.ratio=1.5"])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(PretrainJob, overrides=["model.depth"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(PretrainJob, files=[str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(PretrainJob, files=[str(bad)])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(PretrainJob, overrides=["model.preset=vit_s", "train.strategy=mixed", "data.flip=true"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(PretrainJob, files=[str(tmp_path / "config.yaml")])
    assert again == cfg


RECIPES = {
    # file: (preset, mask ratio, sampling rate, flip, stage epochs) -- paper 4.3, Table 18, F.3
    "k400_vit_b.yaml": ("vit_b", 0.8, 4, True, (300, 300)),
    "ssv2_vit_b.yaml": ("vit_b", 0.8, 2, False, (400, 400)),
    "k400m_vit_s_ablation.yaml": ("vit_s", 0.9, 4, True, (200, 200)),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_paper_recipes_match_table_18(name):
    preset, ratio, rate, flip, stages = RECIPES[name]
    cfg = load_config(PretrainJob, files=[str(ROOT / "configs/pretrain" / name)],
                      overrides=["teacher.weights=ViT-B-16.pt", "data.train_list=list.csv"])
    assert cfg.model.preset == preset and cfg.model.num_frames == 16 and cfg.model.img_size == 224
    assert (cfg.model.tubelet_size, cfg.model.patch_size) == (2, 16)
    assert cfg.mask.kind == "trajectory" and cfg.mask.ratio == ratio
    assert cfg.motion.num_objects == 2
    assert (cfg.motion.size_min, cfg.motion.size_max) == (32, 128)
    assert (cfg.motion.rotation_min, cfg.motion.rotation_max) == (-90, 90)
    assert (cfg.motion.scale_min, cfg.motion.scale_max) == (0.5, 1.5)
    assert cfg.teacher.kind == "clip"
    assert cfg.data.sampling_rate == rate and cfg.data.flip == flip and cfg.data.num_samples == 2
    assert cfg.train.strategy == "progressive"
    assert (cfg.train.stage1_epochs, cfg.train.stage2_epochs) == stages
    assert cfg.train.batch_size == 256 and cfg.train.lr == pytest.approx(1.5e-4)
    assert cfg.train.weight_decay == 0.05 and cfg.train.betas == [0.9, 0.95] and cfg.train.warmup_epochs == 40


def test_every_shipped_config_loads():
    from smile_video.config.generalisation import TadJob, VosJob

    jobs = {"pretrain": PretrainJob, "probe": ProbeJob, "finetune": FinetuneJob, "severe": FinetuneJob,
            "vos": VosJob, "tad": TadJob}
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert files
    for path in files:
        job = jobs[path.parent.name]
        data = yaml.safe_load(path.read_text())
        overrides = ["teacher.weights=w.pt"] if data.get("teacher", {}).get("kind") in ("clip", "dino") else []
        if data.get("data", {}).get("source") == "video":
            overrides.append("data.train_list=list.csv")
        load_config(job, files=[str(path)], overrides=overrides)
