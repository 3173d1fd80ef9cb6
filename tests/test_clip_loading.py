"""CLIP teacher loading: one random CLIP vision tower saved in every supported form gives the same features.

The tower is tiny (width 128, 2 heads, 2 blocks, 32 px, patch 16) so the test runs in seconds; the converters read
every size from the file, so ViT-B/16 goes through the same code. The Hugging Face model's own forward pass is the
independent reference for the timm architecture and the converters.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from smile_video.config import ModelConfig, TeacherConfig
from smile_video.teachers import build_teacher, first_frames
from smile_video.teachers.clip import build_clip_teacher, read_clip_file

transformers = pytest.importorskip("transformers")

WIDTH, HEADS, DEPTH, IMG, PATCH, OUT = 128, 2, 2, 32, 16, 32
GRID, TUBELET = (2, 2, 2), 2  # student: 4 frames at 32 px, tubelet 2, patch 16

# timm -> OpenAI names: the inverse of the converter under test, written out independently.
_TO_OPENAI = (
    ("patch_embed.proj.", "conv1."), ("norm_pre.", "ln_pre."), ("blocks.", "transformer.resblocks."),
    (".norm1.", ".ln_1."), (".norm2.", ".ln_2."), (".attn.qkv.weight", ".attn.in_proj_weight"),
    (".attn.qkv.bias", ".attn.in_proj_bias"), (".attn.proj.", ".attn.out_proj."), (".mlp.fc1.", ".mlp.c_fc."),
    (".mlp.fc2.", ".mlp.c_proj."),
)


def _reference() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    vit = VisionTransformer(img_size=IMG, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                            pre_norm=True, norm_layer=nn.LayerNorm, act_layer="quick_gelu", num_classes=0)
    sd = {k: torch.randn(v.shape, generator=g) * 0.2 + (1.0 if k.endswith("norm1.weight") else 0.0)
          for k, v in vit.state_dict().items()}
    return sd, torch.randn(WIDTH, OUT, generator=g) * 0.1


def _openai_visual(sd: dict[str, torch.Tensor], proj: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {"proj": proj}
    for k, v in sd.items():
        if k == "cls_token":
            out["class_embedding"] = v.reshape(-1)
        elif k == "pos_embed":
            out["positional_embedding"] = v[0]
        elif k.startswith("norm."):
            out["ln_post." + k[len("norm."):]] = v
        else:
            for old, new in _TO_OPENAI:
                k = k.replace(old, new)
            out[k] = v
    return out


def _hf_vision(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {
        "embeddings.class_embedding": sd["cls_token"].reshape(-1),
        "embeddings.patch_embedding.weight": sd["patch_embed.proj.weight"],
        "embeddings.position_embedding.weight": sd["pos_embed"][0],
        "pre_layrnorm.weight": sd["norm_pre.weight"], "pre_layrnorm.bias": sd["norm_pre.bias"],
        "post_layernorm.weight": sd["norm.weight"], "post_layernorm.bias": sd["norm.bias"],
    }
    for i in range(DEPTH):
        b, h = f"blocks.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = sd[b + f"attn.qkv.{kind}"].chunk(3)
            out.update({h + f"self_attn.q_proj.{kind}": q, h + f"self_attn.k_proj.{kind}": k,
                        h + f"self_attn.v_proj.{kind}": v,
                        h + f"self_attn.out_proj.{kind}": sd[b + f"attn.proj.{kind}"],
                        h + f"layer_norm1.{kind}": sd[b + f"norm1.{kind}"],
                        h + f"layer_norm2.{kind}": sd[b + f"norm2.{kind}"],
                        h + f"mlp.fc1.{kind}": sd[b + f"mlp.fc1.{kind}"],
                        h + f"mlp.fc2.{kind}": sd[b + f"mlp.fc2.{kind}"]})
    return out


class _Node(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchscript(sd: dict[str, torch.Tensor]) -> torch.jit.ScriptModule:
    """A scripted module whose state dict has exactly the keys of ``sd`` (OpenAI ships a TorchScript archive)."""
    root = _Node()
    for key, value in sd.items():
        *path, leaf = key.split(".")
        node = root
        for name in path:
            if not hasattr(node, name):
                node.add_module(name, _Node())
            node = getattr(node, name)
        node.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    return torch.jit.script(root)


def _hf_model(sd: dict[str, torch.Tensor]):
    cfg = transformers.CLIPVisionConfig(hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=DEPTH,
                                        num_attention_heads=HEADS, image_size=IMG, patch_size=PATCH,
                                        hidden_act="quick_gelu")
    model = transformers.CLIPVisionModel(cfg).eval()
    target = model.vision_model if hasattr(model, "vision_model") else model
    missing, unexpected = target.load_state_dict(_hf_vision(sd), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every supported form of the same random tower: {form: (path, clip_act)}."""
    root = tmp_path_factory.mktemp("clip")
    sd, proj = _reference()
    visual = _openai_visual(sd, proj)
    text = {"positional_embedding": torch.randn(7, 16), "token_embedding.weight": torch.randn(50, 16),
            "transformer.resblocks.0.attn.in_proj_weight": torch.randn(48, 16), "text_projection": torch.randn(16, 8),
            "logit_scale": torch.tensor(4.6), "ln_final.weight": torch.ones(16)}
    full = {**text, **{"visual." + k: v for k, v in visual.items()},
            "input_resolution": torch.tensor(IMG), "context_length": torch.tensor(7), "vocab_size": torch.tensor(50)}
    forms = {}
    torch.save(full, root / "openai_full.pt")
    forms["openai_full"] = (root / "openai_full.pt", "auto")
    torch.jit.save(_torchscript(full), str(root / "ViT-B-16.pt"))
    forms["openai_torchscript"] = (root / "ViT-B-16.pt", "auto")
    torch.save(visual, root / "visual.pth")
    forms["visual_only"] = (root / "visual.pth", "auto")
    save_file({k: v.contiguous() for k, v in visual.items()}, str(root / "visual.safetensors"))
    forms["visual_safetensors"] = (root / "visual.safetensors", "auto")
    torch.save({"epoch": 3, "name": "run", "state_dict": {"module.visual." + k: v for k, v in visual.items()}},
               root / "open_clip.pt")
    forms["open_clip"] = (root / "open_clip.pt", "quick_gelu")  # open_clip defaults to GELU; this tower is QuickGELU
    hf = _hf_model(sd)
    hf.save_pretrained(str(root / "hf"))
    forms["huggingface"] = (root / "hf", "auto")
    return forms, hf, proj


def _video() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (2, 3, GRID[0] * TUBELET, IMG, IMG), dtype=torch.uint8, generator=g)


def test_every_form_gives_the_same_features(saved):
    forms, _, _ = saved
    video = _video()
    feats = {name: build_clip_teacher(str(path), GRID, TUBELET, act=act)(video) for name, (path, act) in forms.items()}
    ref = feats["openai_full"]
    assert ref.shape == (2, 8, WIDTH)
    for name, f in feats.items():
        assert (f - ref).abs().max().item() <= 1e-5, name


def test_features_match_huggingface_forward(saved):
    """Independent reference: HF CLIPVisionModel patch tokens after post_layernorm (and after block 0)."""
    forms, hf, _ = saved
    video = _video()
    for layer, hidden_index in ((-1, DEPTH), (0, 1)):
        teacher = build_clip_teacher(str(forms["openai_torchscript"][0]), GRID, TUBELET, layer=layer)
        frames = teacher.prepare(first_frames(video, TUBELET))  # (B*T', 3, 32, 32), CLIP-normalised
        with torch.no_grad():
            out = hf(pixel_values=frames, output_hidden_states=True)
        tokens = out.hidden_states[hidden_index][:, 1:]  # (B*T', 4, W)
        if layer == -1:
            tokens = hf.vision_model.post_layernorm(tokens) if hasattr(hf, "vision_model") else hf.post_layernorm(
                tokens)
        expected = tokens.reshape(2, GRID[0] * 4, WIDTH)  # frames are (b, t') ordered -> tokens (t', h', w')
        assert (teacher(video) - expected).abs().max().item() <= 1e-5, layer


def test_projection_and_activation_detection(saved):
    forms, _, proj = saved
    video = _video()
    plain = build_clip_teacher(str(forms["visual_only"][0]), GRID, TUBELET)(video)
    projected = build_clip_teacher(str(forms["visual_only"][0]), GRID, TUBELET, projection=True)
    assert projected.dim == OUT
    torch.testing.assert_close(projected(video), plain @ proj, atol=1e-5, rtol=1e-5)
    assert read_clip_file(forms["openai_torchscript"][0]).act == "quick_gelu"
    assert read_clip_file(forms["open_clip"][0]).act == "gelu"
    assert read_clip_file(forms["huggingface"][0]).act == "quick_gelu"
    with pytest.raises(ValueError, match="no visual projection"):
        build_clip_teacher(str(forms["huggingface"][0]), GRID, TUBELET, projection=True)


def test_grid_matching_interpolates_position_embedding(saved):
    """A 64 px student (4x4 grid) gets a 4x4 CLIP grid per frame, not a pooled 2x2 one."""
    forms, _, _ = saved
    teacher = build_clip_teacher(str(forms["visual_only"][0]), (1, 4, 4), 2)
    assert teacher.frame_size == (64, 64) and tuple(teacher.vit.patch_embed.grid_size) == (4, 4)
    out = teacher(torch.rand(1, 3, 2, 64, 64))
    assert out.shape == (1, 16, WIDTH) and torch.isfinite(out).all()


def test_missing_and_malformed_files_are_clear_errors(tmp_path, saved):
    forms, _, _ = saved
    with pytest.raises(FileNotFoundError, match=r"ViT-B-16\.pt.*fmthoker/SMILE"):
        build_clip_teacher(str(tmp_path / "nope.pt"), GRID, TUBELET)
    garbage = tmp_path / "ViT-B-16.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match=r"ViT-B-16\.pt"):
        build_clip_teacher(str(garbage), GRID, TUBELET)
    torch.save({"cls_token": torch.zeros(1, 1, 8), "blocks.0.norm1.weight": torch.ones(8)}, tmp_path / "dino.pth")
    with pytest.raises(ValueError, match="not a CLIP checkpoint"):
        build_clip_teacher(str(tmp_path / "dino.pth"), GRID, TUBELET)
    visual = torch.load(forms["visual_only"][0], weights_only=True)
    del visual["transformer.resblocks.1.mlp.c_fc.weight"]
    torch.save(visual, tmp_path / "truncated.pth")
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp\.fc1\.weight"):
        build_clip_teacher(str(tmp_path / "truncated.pth"), GRID, TUBELET)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        build_clip_teacher(str(tmp_path / "emptydir"), GRID, TUBELET)
    model = ModelConfig(img_size=IMG, num_frames=4)
    with pytest.raises(FileNotFoundError, match="teacher.kind=clip"):
        build_teacher(TeacherConfig(kind="clip", weights=""), model)
