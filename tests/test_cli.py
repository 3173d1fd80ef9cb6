"""The `smile` CLI: every verb has help; config errors exit non-zero with the key named."""

import subprocess
import sys

import pytest

from smile_video.cli import VERBS, main


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb.name in out


@pytest.mark.parametrize("verb", [v.name for v in VERBS])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_misspelt_key_exits_nonzero_naming_key_and_suggestion(capsys):
    assert main(["pretrain", "model.depht=3"]) != 0
    err = capsys.readouterr().err
    assert "model.depht" in err and "model.depth" in err


def test_wrong_type_exits_nonzero_naming_key_and_type(capsys):
    assert main(["pretrain", "train.lr=abc"]) != 0
    err = capsys.readouterr().err
    assert "train.lr" in err and "float" in err


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "smile_video", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pretrain" in out.stdout


def test_bench_runs_the_train_step_benchmark(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "train-step", "--steps", "1", "--batch", "2", "--json", str(out)]) == 0
    import json

    result = json.loads(out.read_text())["results"][0]
    assert result["preset"] == "tiny" and result["clips_per_s"] > 0 and 0 < result["mfu"] < 1.5
    assert "clips/s" in capsys.readouterr().out


def test_bench_train_step_cpu_bf16_measures_each_precision_against_fp32(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "train-step", "--steps", "1", "--batch", "2", "--cpu-bf16", "--json", str(out)]) == 0
    import json

    results = json.loads(out.read_text())["results"]
    kinds = [(r["precision"], r["teacher_dtype"]) for r in results]
    assert kinds == [("fp32", "auto"), ("fp32", "bfloat16"), ("bf16", "bfloat16")]
    assert all(r["clips_per_s"] > 0 for r in results)
    assert capsys.readouterr().out.count("step rate / fp32's") == 2


def test_bench_train_step_bf16_teacher_weights_on_the_cpu_apply_to_the_bf16_kinds(capsys, tmp_path):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit, match="add --cpu-bf16"):  # alone, the CPU step's teacher runs in fp32
        main(["bench", "train-step", "--steps", "1", "--batch", "2", "--teacher-weights", "bfloat16"])
    assert main(["bench", "train-step", "--steps", "1", "--batch", "2", "--cpu-bf16", "--teacher-weights", "bfloat16",
                 "--json", str(out)]) == 0
    import json

    results = json.loads(out.read_text())["results"]
    assert [r["teacher_weights"] for r in results] == ["float32", "bfloat16", "bfloat16"]


def test_bench_finetune_step_times_fp32_and_bf16_in_the_same_run(capsys, tmp_path):
    out = tmp_path / "ft.json"
    assert main(["bench", "finetune-step", "--batch", "2", "--rounds", "2", "--json", str(out)]) == 0
    import json

    result = json.loads(out.read_text())
    assert set(result["times"]) == {"fp32", "bf16"} and all(len(t) == 2 for t in result["times"].values())
    assert result["tokens"] == 256 and all(t > 0 for t in result["step_s_median"].values())  # 4 x 8 x 8: 8-px
    assert "fp32's rate" in capsys.readouterr().out


def test_bench_profile_reports_every_phase_of_the_step(capsys):
    assert main(["bench", "train-step", "--steps", "1", "--batch", "2", "--profile", "1"]) == 0
    out = capsys.readouterr().out
    for phase in ("augment", "mask", "teacher", "student", "backward", "optimizer", "whole step"):
        assert f"smile/{phase}" in out, phase
    assert "top self CPU time" in out


def test_a_verb_with_a_missing_dependency_does_not_break_the_others(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av" or name.startswith("av."):
            raise ModuleNotFoundError("No module named 'av'", name="av")
        return real_import(name, *args, **kwargs)

    import sys as _sys

    for mod in [m for m in _sys.modules if m.startswith("smile_video.commands.data_check") or m == "av"
                or m.startswith("smile_video.data.decode")]:
        monkeypatch.delitem(_sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_av)
    assert main(["data-check", "list.csv"]) == 1
    assert "No module named 'av'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["pretrain", "--help"])
    assert e.value.code == 0
