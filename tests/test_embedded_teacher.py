"""The embedded EfficientNet-Lite0 teacher: the package's weights map onto timm exactly and are really pretrained."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from smile_video.config import ModelConfig, TeacherConfig
from smile_video.teachers import build_teacher
from smile_video.teachers.embedded import (
    EfficientNetTeacher,
    build_lite0,
    fold_batchnorm,
    lite0_to_timm,
    lite0_weights_path,
)
from smile_video.teachers.vit_teachers import read_state_dict

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def teacher_224() -> EfficientNetTeacher:
    return EfficientNetTeacher(grid=(1, 14, 14), tubelet=1)


def _image(array) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W) uint8


def test_converter_maps_every_key_onto_timm():
    import timm

    sd = read_state_dict(lite0_weights_path(), "the package's weights")
    converted = lite0_to_timm(sd)
    own = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(converted) == len(sd) == len(own)
    assert set(converted) == set(own)
    assert all(converted[k].shape == own[k].shape for k in own)
    with pytest.raises(KeyError, match="_se_reduce"):
        lite0_to_timm({"_blocks.3._se_reduce.weight": torch.zeros(1)})


def test_weights_are_pretrained_on_imagenet(teacher_224):
    """With its classifier the teacher recognises scikit-image's bundled photos (random weights would not)."""
    cat = teacher_224.classify(_image(data.chelsea())).softmax(-1)[0]
    coffee = teacher_224.classify(_image(data.coffee())).softmax(-1)[0]
    assert cat.argmax().item() in CAT_CLASSES and cat[list(CAT_CLASSES)].sum() > 0.5
    assert coffee.argmax().item() == ESPRESSO and coffee[ESPRESSO] > 0.5


def test_stride16_grid_is_14x14_at_224(teacher_224):
    assert teacher_224.dim == 112 and teacher_224.frame_size == (224, 224)
    feat = teacher_224.encode(teacher_224.prepare(_image(data.chelsea())))
    assert feat.shape == (1, 112, 14, 14)  # no pooling needed: the stride-16 grid is the student's
    video = _image(data.coffee()).unsqueeze(2)  # (1, 3, 1, H, W): one tubelet of one frame
    video = torch.nn.functional.interpolate(video.float(), size=(1, 224, 224)).to(torch.uint8)
    targets = teacher_224(video)
    assert targets.shape == (1, 196, 112) and torch.isfinite(targets).all()


def test_native_resize_pools_to_the_student_grid(teacher_224):
    native = EfficientNetTeacher(grid=(1, 4, 4), tubelet=1, resize="native")
    frame = _image(data.chelsea())
    small = torch.nn.functional.interpolate(frame.float(), size=(64, 64), antialias=True, mode="bilinear")
    small = small.round().to(torch.uint8)
    out = native(small.unsqueeze(2))  # (1, 16, 112)
    expected = torch.nn.functional.adaptive_avg_pool2d(teacher_224.encode(teacher_224.prepare(small)), 4)
    torch.testing.assert_close(out, expected.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-4)


def test_build_teacher_default_is_embedded_and_rejects_vit_options():
    model = ModelConfig()  # tiny preset: 8 frames at 64 px, tubelet 2 -> grid (4, 4, 4)
    teacher = build_teacher(TeacherConfig(), model)
    assert isinstance(teacher, EfficientNetTeacher) and teacher.frame_size == (64, 64)
    assert teacher(torch.zeros(1, 3, 8, 64, 64, dtype=torch.uint8)).shape == (1, model.num_tokens, 112)
    with pytest.raises(ValueError, match="teacher.layer"):
        build_teacher(TeacherConfig(layer=3), model)


def test_folded_batchnorm_gives_the_unfolded_features():
    """The teacher folds its BatchNorms into the convolutions: the same stride-16 features as the plain network."""
    teacher = EfficientNetTeacher((2, 4, 4), 2).eval()
    plain = build_lite0().eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in teacher.net.blocks.modules())
    frames = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x = teacher.prepare(frames)
    with torch.no_grad():
        ref = plain.bn1(plain.conv_stem(x))
        for stage in plain.blocks[:5]:
            ref = stage(ref)
        out = teacher.encode(x)
    assert out.shape == ref.shape == (3, 112, 4, 4)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert fold_batchnorm(build_lite0()) == 1 + 2 + 15 * 3  # stem, the depthwise-separable block, 15 inverted


def test_cpu_chunking_keeps_the_targets():
    """On the CPU, frame_chunk=0 runs ~2^17-pixel chunks (32 frames at 64 px): the same targets as one pass."""
    auto = EfficientNetTeacher((4, 4, 4), 2).eval()
    whole = EfficientNetTeacher((4, 4, 4), 2, frame_chunk=10_000).eval()
    frames = torch.zeros(40, 3, 64, 64)
    assert auto.chunk_size(frames) == 32 and whole.chunk_size(frames) == 10_000
    video = torch.randint(0, 256, (10, 3, 8, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a, b = auto(video), whole(video)  # 40 first-of-tubelet frames: chunks of 32 + 8 against one of 40
    assert a.shape == (10, 64, 112) and torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
