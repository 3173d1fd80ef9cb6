"""The config from the command line: --print-config round trips through -c, flags and overrides mix in any order,
and keys the chosen strategy / source / kind does not read are refused (issue 15, items 4-6)."""

from __future__ import annotations

import pytest

from smile_video.cli import main
from smile_video.config import ConfigError, FinetuneJob, KnnJob, PretrainJob, ProbeJob, load_config, to_dict


def printed(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert not err
    return out


@pytest.mark.parametrize("verb, job, extra, flags", [
    ("pretrain", PretrainJob, ["train.strategy=single", "train.epochs=7", "data.epoch_size=32"],
     {"--out": "o", "run.out_dir": "o"}),
    ("probe", ProbeJob, ["probe.lrs=[0.01,0.1]", "probe.train_list=t.csv"], {}),
    ("knn", KnnJob, ["probe.knn_k=5"], {}),
    ("finetune", FinetuneJob, ["finetune.lr=0.01", "train.precision=fp32"], {"--resume": "auto", "run.resume": "auto"}),
])
def test_print_config_is_yaml_that_c_reads_back_to_the_same_config(verb, job, extra, flags, tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  preset: vit_s\n  depth: 3\nrun:\n  quiet: false\n")
    cli_flags = [x for k, v in flags.items() if k.startswith("--") for x in (k, v)]
    text = printed(capsys, verb, "-c", str(base), *extra, *cli_flags, "--quiet", "--print-config")
    saved = tmp_path / "printed.yaml"
    saved.write_text(text)
    again = load_config(job, [str(saved)])
    direct = load_config(job, [str(base)], [*extra, "run.quiet=true",
                                            *(f"{k}={v}" for k, v in flags.items() if not k.startswith("--"))])
    assert to_dict(again) == to_dict(direct)
    assert again.model.depth == 3 and again.model.embed_dim == 384 and again.run.quiet  # file, preset, flag
    assert printed(capsys, verb, "-c", str(saved), "--print-config") == text  # a fixed point
    assert not (tmp_path / "o").exists()  # printing does no work


def test_overrides_may_follow_flags_in_any_order(capsys):
    text = printed(capsys, "pretrain", "model.preset=tiny", "--quiet", "train.lr=1e-3", "--out", "x",
                   "train.lr=2e-3", "--print-config")
    cfg = load_config(PretrainJob, overrides=[])
    assert "lr: 0.002" in text and "quiet: true" in text and "out_dir: x" in text and cfg.train.lr != 0.002
    text = printed(capsys, "probe", "--random-init", "probe.knn_k=3", "--quiet", "probe.epochs=4", "--print-config")
    assert "knn_k: 3" in text and "epochs: 4" in text
    with pytest.raises(SystemExit):  # a flag that does not exist is still an argparse error
        main(["pretrain", "model.preset=tiny", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("job, overrides, named", [
    (PretrainJob, ["train.epochs=10"], ["train.epochs=10", "train.stage1_epochs + train.stage2_epochs"]),
    (PretrainJob, ["train.strategy=single", "train.stage2_epochs=3"], ["train.stage2_epochs=3", "train.epochs"]),
    (PretrainJob, ["train.strategy=mixed", "train.restart_schedule=true"], ["train.restart_schedule"]),
    (PretrainJob, ["data.source=video", "data.train_list=l.csv", "data.epoch_size=9"], ["data.epoch_size=9"]),
    (PretrainJob, ["data.train_list=l.csv"], ["data.train_list", "data.background=frame|video"]),
    (PretrainJob, ["mask.kind=tube", "mask.variant=official"], ["mask.variant", "mask.kind=tube"]),
    (PretrainJob, ["teacher.weights=w.pt"], ["teacher.weights", "teacher.kind=embedded"]),
    (PretrainJob, ["run.force_resume=true"], ["run.force_resume", "run.resume"]),
    (FinetuneJob, ["train.lr=0.1"], ["train.lr=0.1", "finetune.lr"]),
    (FinetuneJob, ["train.seed=3"], ["train.seed=3", "finetune.seed"]),
    (ProbeJob, ["run.resume=auto"], ["run.resume", "--overwrite"]),
    (ProbeJob, ["probe.knn_vote=majority", "probe.knn_temperature=0.5"], ["probe.knn_temperature"]),
    (PretrainJob, ["train.compile_mode=reduce-overhead"], ["train.compile_mode='reduce-overhead'",
                                                           "train.compile=false"]),
    (PretrainJob, ["data.keyframe_window=8"], ["data.keyframe_window=8", "data.start_sampling=uniform"]),
    (PretrainJob, ["data.image_dir=places"], ["data.image_dir='places'", "data.background=image"]),
    (PretrainJob, ["data.source=video", "data.train_list=l.csv", "data.per_sample_start=true"],
     ["data.per_sample_start", "data.num_samples=1"]),
    (ProbeJob, ["probe.head=attentive", "probe.pooling=time"], ["probe.pooling='time'", "probe.head=attentive"]),
    (ProbeJob, ["probe.attentive_heads=8"], ["probe.attentive_heads=8", "probe.head=linear"]),
    (KnnJob, ["probe.head=attentive"], ["probe.head='attentive'", "smile knn"]),
])
def test_a_key_the_choice_does_not_read_is_refused_naming_what_applies(job, overrides, named):
    with pytest.raises(ConfigError) as e:
        load_config(job, overrides=overrides)
    for text in named:
        assert text in str(e.value)


def test_keys_the_choice_does_read_still_load():
    cfg = load_config(PretrainJob, overrides=["train.stage1_epochs=3", "train.stage2_epochs=2"])
    assert cfg.train.total_epochs == 5
    assert load_config(PretrainJob, overrides=["train.strategy=single", "train.epochs=4"]).train.total_epochs == 4
    assert load_config(PretrainJob, overrides=["data.background=frame", "data.train_list=l.csv"]).data.train_list
    assert load_config(PretrainJob, overrides=["data.background=image", "data.image_dir=p"]).data.image_dir == "p"
    assert load_config(PretrainJob, overrides=["train.compile=true", "train.compile_mode=reduce-overhead"]
                       ).train.compile_mode == "reduce-overhead"
    assert load_config(FinetuneJob, overrides=["train.precision=fp32", "train.clip_grad=1.0"]).train.clip_grad == 1.0


def test_unused_key_on_the_command_line_is_one_clear_line(capsys):
    assert main(["pretrain", "train.epochs=10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.epochs=10" in err and "Traceback" not in err
