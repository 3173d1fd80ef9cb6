"""The student: VideoMAE-compatible ViT encoder and decoder, classifier, checkpoint converters."""

from .classifier import VideoClassifier, encode
from .pretrain import PretrainModel
from .vit import VideoViTDecoder, VideoViTEncoder, check_mask, sinusoid_table

__all__ = ["VideoViTEncoder", "VideoViTDecoder", "PretrainModel", "VideoClassifier", "encode", "check_mask",
           "sinusoid_table"]
