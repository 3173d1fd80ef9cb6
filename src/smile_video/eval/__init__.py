"""Evaluation: features, linear probe, kNN, finetuning, frame similarity, the embedded benchmark."""
