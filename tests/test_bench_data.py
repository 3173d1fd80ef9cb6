"""`smile bench data` runs end to end at a toy size and reports every loader it measured (no speed asserted)."""

from __future__ import annotations

import json

from smile_video.cli import main


def test_bench_data_reports_each_loader(tmp_path, capsys):
    out = tmp_path / "data.json"
    assert main(["bench", "data", "--videos", "1", "--seconds", "3", "--items", "1", "--repeats", "1",
                 "--decoders", "pyav", "--num-samples", "1,2", "--cache", str(tmp_path / "cache"),
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    loaders = {(r["loader"], r["num_samples"], r["files"]) for r in report["rows"]}
    assert {("ours, pyav", 1, "long GOP"), ("ours, pyav", 2, "long GOP"), ("ours, pyav", 1, "GOP 16"),
            ("ours, pyav, keyframe starts", 1, "long GOP")} <= loaders
    assert all(r["ms_per_clip"] > 0 for r in report["rows"])
    assert report["size"]["short_gop_bytes"] > 0
    assert report["lead_in"]["GOP 16"]["frames_decoded_per_clip"] < report["lead_in"]["long GOP"][
        "frames_decoded_per_clip"]
    assert "| loader |" in capsys.readouterr().out
