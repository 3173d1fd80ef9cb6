"""Teachers: frozen image encoders (CLIP, DINO, DINOv2, MAE, the embedded EfficientNet-Lite0) and pixel targets."""
