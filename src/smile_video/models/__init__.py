"""The student: VideoMAE-compatible ViT encoder and decoder, classifier, checkpoint converters."""
