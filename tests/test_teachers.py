"""Teacher interface: token order, grid matching, freezing, pixel targets, target normalisation, ViT teachers."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from smile_video.config import ModelConfig, TeacherConfig
from smile_video.config.checks import ConfigError
from smile_video.teachers import ImageTeacher, PixelTeacher, build_teacher, normalize_targets
from smile_video.teachers.vit_teachers import build_vit_teacher


class PatchMeanTeacher(ImageTeacher):
    """A teacher whose feature is the mean raw value of each 16x16 cell: its output encodes where it came from."""

    def __init__(self, grid: tuple[int, int, int], tubelet: int) -> None:
        super().__init__(3, grid, tubelet, (grid[1] * 16, grid[2] * 16), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                         dtype="float32")
        self.weight = nn.Parameter(torch.ones(()))  # something a broken freeze would let change
        self.freeze()

    def encode(self, frames: Tensor) -> Tensor:
        return F.avg_pool2d(frames, 16) * self.weight  # (F, 3, h, w)


def _coded_video(B: int, T: int, h: int, w: int) -> Tensor:
    """Float clip whose every 16x16 cell holds 1000 b + 100 t + 10 i + j (+ 0.1 c): each cell names itself."""
    b, c, t, y, x = torch.meshgrid(torch.arange(B), torch.arange(3), torch.arange(T), torch.arange(h * 16),
                                   torch.arange(w * 16), indexing="ij")
    return (1000 * b + 100 * t + 10 * (y // 16) + (x // 16) + 0.1 * c).float()


def test_targets_follow_student_token_order_and_use_first_frame_of_each_tubelet():
    B, tubelet, (t, h, w) = 2, 2, (3, 2, 4)
    teacher = PatchMeanTeacher((t, h, w), tubelet)
    video = _coded_video(B, t * tubelet, h, w)
    targets = teacher(video)  # (B, N, 3)
    assert targets.shape == (B, t * h * w, 3)
    for bi in range(B):
        for n in range(t * h * w):
            ti, rest = divmod(n, h * w)  # (t', h', w') row-major
            i, j = divmod(rest, w)
            expected = 1000 * bi + 100 * (ti * tubelet) + 10 * i + j + 0.1 * torch.arange(3.0)
            torch.testing.assert_close(targets[bi, n], expected, atol=0.02, rtol=0)  # codes differ by >= 0.1
    other = video.clone()
    other[:, :, 1::tubelet] = -5.0  # frames that are not first of a tubelet do not matter
    torch.testing.assert_close(teacher(other), targets)


def test_every_frame_targets_concatenate_each_frame_of_the_tubelet_in_order():
    B, tubelet, (t, h, w) = 2, 2, (3, 2, 4)
    teacher = PatchMeanTeacher((t, h, w), tubelet).use_every_frame()
    assert teacher.dim == 6 and teacher.use_every_frame().dim == 6  # idempotent
    targets = teacher(_coded_video(B, t * tubelet, h, w))  # (B, N, 2 * 3)
    assert targets.shape == (B, t * h * w, 6)
    for bi in range(B):
        for n in range(t * h * w):
            ti, rest = divmod(n, h * w)
            i, j = divmod(rest, w)
            expected = torch.cat([1000 * bi + 100 * (ti * tubelet + k) + 10 * i + j + 0.1 * torch.arange(3.0)
                                  for k in range(tubelet)])  # frame t' * tubelet, then the next one
            torch.testing.assert_close(targets[bi, n], expected, atol=0.02, rtol=0)


def test_teacher_frames_config():
    model = ModelConfig()  # tiny: 8 frames, 64 px -> grid (4, 4, 4), tubelet 2
    first = build_teacher(TeacherConfig(kind="embedded"), model)
    every = build_teacher(TeacherConfig(kind="embedded", frames="all"), model)
    assert every.dim == 2 * first.dim
    video = torch.randint(0, 256, (1, 3, 8, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a, b = first(video), every(video)
    torch.testing.assert_close(b[..., :first.dim], a, atol=1e-4, rtol=1e-4)
    swapped = video[:, :, torch.arange(8).view(4, 2).flip(1).flatten()]  # each tubelet's two frames swapped
    torch.testing.assert_close(b[..., first.dim:], first(swapped), atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="teacher.frames=all applies to image teachers"):
        TeacherConfig(kind="pixel", frames="all").validate()
    with pytest.raises(ConfigError, match="teacher.frames"):
        TeacherConfig(frames="second").validate()


def test_real_teacher_permuting_tubelets_permutes_token_blocks():
    model = ModelConfig()  # tiny: 8 frames, 64 px -> grid (4, 4, 4)
    teacher = build_teacher(TeacherConfig(kind="embedded", frame_chunk=3), model)  # chunks cross clip borders
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 3, 8, 64, 64), dtype=torch.uint8, generator=g)
    perm = torch.tensor([2, 0, 3, 1])
    frame_perm = (perm[:, None] * 2 + torch.arange(2)).flatten()  # move whole tubelets
    a = teacher(video).view(2, 4, 16, -1)
    b = teacher(video[:, :, frame_perm]).view(2, 4, 16, -1)
    torch.testing.assert_close(b, a[:, perm], atol=1e-4, rtol=1e-4)
    single = teacher.feature_grid(video[1:2, :, 4])  # clip 1, tubelet 2's first frame: (1, D, 4, 4)
    torch.testing.assert_close(a[1, 2], single.flatten(2).transpose(1, 2)[0], atol=1e-4, rtol=1e-4)


def test_pixel_targets_match_an_explicit_loop():
    tubelet, patch, (t, h, w) = 2, 16, (2, 2, 3)
    teacher = PixelTeacher((t, h, w), tubelet, patch)
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (1, 3, t * tubelet, h * patch, w * patch), dtype=torch.uint8, generator=g)
    targets = teacher(video)
    assert targets.shape == (1, t * h * w, tubelet * patch * patch * 3) and teacher.dim == targets.shape[-1]
    x = video.float() / 255
    n = 0
    for ti in range(t):
        for i in range(h):
            for j in range(w):
                cube = x[0, :, ti * tubelet:(ti + 1) * tubelet, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch]
                cube = cube.permute(1, 2, 3, 0).reshape(-1, 3)  # (dt*dy*dx, C)
                expected = (cube - cube.mean(0)) / (cube.std(0) + 1e-6)
                torch.testing.assert_close(targets[0, n], expected.flatten(), atol=1e-5, rtol=1e-5)
                n += 1


@pytest.mark.parametrize("kind", ["embedded", "patchmean"])
def test_teacher_frozen_through_a_training_step(kind):
    model = ModelConfig()
    teacher = build_teacher(TeacherConfig(), model) if kind == "embedded" else PatchMeanTeacher(model.grid, 2)
    teacher.train(True)  # asked to train: stays in eval mode (BatchNorm statistics must not move)
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = nn.Sequential(nn.Conv3d(3, teacher.dim, (2, 16, 16), (2, 16, 16)), nn.Flatten(2))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    student_before = [p.clone() for p in student.parameters()]
    video = torch.randint(0, 256, (2, 3, 8, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    targets = normalize_targets(teacher(video), "official")  # an ordinary tensor: usable in a loss
    pred = student(video.float() / 255).transpose(1, 2)  # (B, N, D)
    loss = F.mse_loss(pred, targets)
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(student_before, student.parameters()))
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_targets_for_masks_runs_the_teacher_once():
    teacher = PatchMeanTeacher((2, 2, 2), 2)
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    video = _coded_video(3, 4, 2, 2)
    out = teacher.targets_for_masks(video, num_masks=2)
    assert len(calls) == 1 and out.shape == (6, 8, 3)
    torch.testing.assert_close(out[0::2], out[1::2])
    torch.testing.assert_close(out[2], teacher(video)[1])


def test_normalize_targets_modes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 8, generator=g) * 3 + 5
    off = normalize_targets(x, "official")
    torch.testing.assert_close(off.mean(1), torch.zeros(2, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(off.std(1), torch.ones(2, 8), atol=1e-4, rtol=0)
    ln = normalize_targets(x, "layernorm")
    torch.testing.assert_close(ln.mean(-1), torch.zeros(2, 50), atol=1e-5, rtol=0)
    torch.testing.assert_close(ln.var(-1, unbiased=False), torch.ones(2, 50), atol=1e-3, rtol=0)
    assert torch.equal(normalize_targets(x, "none"), x)
    with pytest.raises(ValueError, match="target_norm"):
        normalize_targets(x, "batchnorm")
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        normalize_targets(x[0], "official")


def test_bad_clip_shapes_are_rejected():
    teacher = PatchMeanTeacher((2, 2, 2), 2)
    with pytest.raises(ValueError, match="expects 2 tubelets"):
        teacher(torch.zeros(1, 3, 6, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        teacher(torch.zeros(3, 4, 32, 32))


VIT_CASES = {  # kind: (timm arch, tiny kwargs, native img)
    "dino": ("vit_base_patch16_224", 32),
    "mae": ("vit_base_patch16_224", 32),
    "dinov2": ("vit_base_patch14_reg4_dinov2", 28),  # register tokens: 5 prefix tokens to drop
}


@pytest.mark.parametrize("kind", sorted(VIT_CASES))
def test_vit_teacher_loads_every_wrapper_and_matches_timm(kind, tmp_path):
    arch, img = VIT_CASES[kind]
    kw = dict(embed_dim=64, depth=2, num_heads=2, img_size=img)
    torch.manual_seed(0)
    ref = timm.create_model(arch, pretrained=False, num_classes=0, **kw).eval()
    sd = ref.state_dict()
    files = {"plain.pth": sd, "model.pth": {"model": sd, "epoch": 1},
             "dino_ckpt.pth": {"teacher": {**{f"backbone.{k}": v for k, v in sd.items()},
                                           "head.mlp.0.weight": torch.zeros(4, 64)}},
             "module.pth": {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "mask_token": torch.zeros(1)}}
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    grid = (2, 2, 2)
    video = torch.randint(0, 256, (1, 3, 4, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    outs = [build_vit_teacher(kind, str(tmp_path / name), arch, grid, 2, **kw)(video)
            for name in [*files, "model.safetensors"]]
    for out in outs[1:]:
        assert torch.equal(out, outs[0])
    teacher = build_vit_teacher(kind, str(tmp_path / "plain.pth"), arch, grid, 2, **kw)
    frames = teacher.prepare(video[:, :, ::2].transpose(1, 2).flatten(0, 1))  # (T', 3, img, img)
    with torch.no_grad():
        expected = ref.forward_features(frames)[:, ref.num_prefix_tokens:]  # (T', 4, 64) after the final norm
    torch.testing.assert_close(outs[0], expected.reshape(1, 8, 64), atol=1e-5, rtol=1e-5)


def test_vit_teacher_errors_name_the_problem(tmp_path):
    arch, kw = "vit_base_patch16_224", dict(embed_dim=64, depth=2, num_heads=2, img_size=32)
    with pytest.raises(FileNotFoundError, match="dino_vitbase16_pretrain.pth"):
        build_vit_teacher("dino", str(tmp_path / "missing.pth"), arch, (2, 2, 2), 2, **kw)
    sd = timm.create_model(arch, pretrained=False, num_classes=0, **kw).state_dict()
    del sd["blocks.1.attn.qkv.weight"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"missing keys \['blocks\.1\.attn\.qkv\.weight'\]"):
        build_vit_teacher("mae", str(tmp_path / "broken.pth"), arch, (2, 2, 2), 2, **kw)
    with pytest.raises(ValueError, match="teacher.layer=5"):
        sd = timm.create_model(arch, pretrained=False, num_classes=0, **kw).state_dict()
        torch.save(sd, tmp_path / "ok.pth")
        build_vit_teacher("mae", str(tmp_path / "ok.pth"), arch, (2, 2, 2), 2, layer=5, **kw)


def test_bf16_teacher_returns_float32_close_to_fp32(tmp_path):
    arch, kw = "vit_base_patch16_224", dict(embed_dim=64, depth=2, num_heads=2, img_size=32)
    torch.save(timm.create_model(arch, pretrained=False, num_classes=0, **kw).state_dict(), tmp_path / "w.pth")
    video = torch.rand(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    fp32 = build_vit_teacher("dino", str(tmp_path / "w.pth"), arch, (2, 2, 2), 2, dtype="float32", **kw)(video)
    bf16 = build_vit_teacher("dino", str(tmp_path / "w.pth"), arch, (2, 2, 2), 2, dtype="bfloat16", **kw)(video)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, atol=0.1, rtol=0.05)


def test_teacher_weights_kept_in_bf16_give_the_autocast_targets():
    from smile_video.config import PretrainJob, load_config
    from smile_video.teachers import build_teacher

    cfg = load_config(PretrainJob, overrides=["model.img_size=64", "model.num_frames=4", "teacher.dtype=bfloat16",
                                              "teacher.weights_dtype=bfloat16"])
    video = torch.randint(0, 256, (2, 3, 4, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    fp32 = build_teacher(cfg.teacher, cfg.model)
    bf16 = build_teacher(cfg.teacher, cfg.model).keep_weights_in(torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in bf16.parameters())
    assert {n: b.dtype for n, b in bf16.named_buffers() if n in ("mean", "std")} == {"mean": torch.float32,
                                                                                     "std": torch.float32}
    a, b = fp32(video), bf16(video)
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert torch.allclose(a, b, atol=0.05 * a.abs().mean().item())  # matmuls saw bf16 weights either way


def test_bf16_teacher_weights_need_a_bf16_teacher(tmp_path):
    from smile_video.config import ConfigError, PretrainJob, load_config
    from smile_video.engine.pretrain import Pretrainer

    with pytest.raises(ConfigError, match="teacher.weights_dtype=bfloat16 needs a bf16 teacher"):
        load_config(PretrainJob, overrides=["teacher.dtype=float32", "teacher.weights_dtype=bfloat16"])
    cfg = load_config(PretrainJob, overrides=["teacher.weights_dtype=bfloat16", "train.device=cpu",
                                              f"run.out_dir={tmp_path / 'run'}", "run.quiet=true"])
    with pytest.raises(ValueError, match="teacher.dtype=auto runs in fp32 on cpu"):
        Pretrainer(cfg)
