"""`smile demo --quick`: every step of the main job runs and the report folder is complete."""

import json

from smile_video.cli import main


def test_demo_quick_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    report = out / "report"
    for name in ("report.md", "results.json", "motion_filmstrip.png", "motion.gif", "loss_curve.png",
                 "similarity.png", "similarity.json"):
        assert (report / name).is_file(), name
    results = json.loads((report / "results.json").read_text())
    assert set(results) == {"motion", "appearance"}
    for task in results.values():
        assert set(task) == {"random init", "SMILE"}
        for r in task.values():
            assert 0.0 <= r["probe"]["best"]["top1"] <= 100.0
    table = capsys.readouterr().out
    assert "| motion | SMILE |" in table and "| appearance | random init |" in table
    sims = json.loads((report / "similarity.json").read_text())
    assert set(sims) == {"random init", "SMILE"}
    assert sims["random init"]["matrix"] != sims["SMILE"]["matrix"]
    # the pretraining run is the engine's own: config, metrics and a model in our format
    assert (out / "pretrain" / "model" / "model.safetensors").is_file()
    assert (out / "pretrain" / "config.yaml").is_file()
