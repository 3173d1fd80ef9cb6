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
    assert set(results) == {"random init", "SMILE"}
    for r in results.values():
        for task in ("motion", "appearance"):
            for metric in ("probe", "probe_val", "attentive", "attentive_val", "knn"):
                assert 0.0 <= r[task][metric] <= 100.0, (task, metric)
        assert 0.0 <= r["motion"]["finetune"] <= 100.0 and "finetune" not in r["appearance"]
        assert -1.0 <= r["stats"]["similarity_centred"] <= 1.0
    table = capsys.readouterr().out
    assert "| motion | SMILE |" in table and "| appearance | random init |" in table
    assert "chosen on val, test top-1 reported" in (report / "report.md").read_text()
    sims = json.loads((report / "similarity.json").read_text())
    assert set(sims) == {"random init", "SMILE"}
    assert sims["random init"]["matrix"] != sims["SMILE"]["matrix"]
    # the pretraining run is the engine's own: config, metrics and a model in our format
    assert (out / "pretrain" / "model" / "model.safetensors").is_file()
    assert (out / "pretrain" / "config.yaml").is_file()
