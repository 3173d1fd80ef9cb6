"""Video data: annotation lists, decoding, clip sampling, transforms, synthetic sources."""
