"""The CUDA path of pretraining: motion infusion, masking, teacher and student on the GPU, bf16 autocast.

Skipped where there is no GPU (CI); run on a GPU machine with `pytest tests/test_cuda.py`.
"""

import pytest
import torch

from smile_video.config import PretrainJob, load_config
from smile_video.engine.pretrain import pretrain
from smile_video.runlog import read_metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

TINY = ["model.preset=tiny", "model.img_size=32", "model.num_frames=4", "mask.ratio=0.75", "data.epoch_size=32",
        "train.batch_size=8", "train.lr=1e-3", "train.log_every=1", "run.quiet=true", "train.device=cuda"]


@pytest.mark.parametrize("strategy", ["progressive", "mixed"])
def test_pretrain_on_cuda_in_bf16_finishes_with_finite_loss(tmp_path, strategy):
    out = tmp_path / strategy
    cfg = load_config(PretrainJob, overrides=[*TINY, f"train.strategy={strategy}", f"run.out_dir={out}"])
    pretrain(cfg)
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert losses and all(loss == loss and loss < 1e3 for loss in losses)
    assert (out / "model" / "model.safetensors").is_file()


def test_cuda_resume_continues_from_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    common = [*TINY, "train.strategy=single", "train.save_every=2", f"run.out_dir={out}"]
    pretrain(load_config(PretrainJob, overrides=[*common, "train.epochs=1"]))  # 4 steps, then a longer run resumes
    pretrain(load_config(PretrainJob, overrides=[*common, "train.epochs=2", "run.resume=auto"]))
    events = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "resume"]
    assert events and events[-1]["step"] == 4
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert steps[-1] == 8
