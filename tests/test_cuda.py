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


def test_the_step_samples_motion_on_the_host_and_composites_on_the_gpu():
    """On a GPU the step draws the motion from a host generator with the slot's seed (no sampling kernels, no
    device-to-host sync before the host-side window plan): the clips it trains on are the CPU compositing of the same
    draw (the Triton and C kernels agree to within rounding), and the mask still comes from the device generator."""
    from smile_video.engine.step import MicroStep
    from smile_video.motion import infuse_motion
    from smile_video.objects import default_bank

    cfg = load_config(PretrainJob, overrides=[*TINY, "train.strategy=single"])
    bank = default_bank("pretrain")
    step = MicroStep(cfg, None, None, bank, torch.device("cuda"), None, None)
    video = torch.randint(0, 256, (4, 3, 4, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator(device="cuda").manual_seed(7)
    out, _ = step.augment(video.cuda(), "augmented", gen)
    assert gen.get_state().equal(torch.Generator(device="cuda").manual_seed(7).get_state())  # not drawn from
    ref, _ = infuse_motion(video.clone(), bank, cfg.motion, torch.Generator().manual_seed(7))
    assert (out.cpu().int() - ref.int()).abs().max() <= 1
