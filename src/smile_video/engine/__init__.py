"""Training engine: optimisation, schedules, the pretraining loop, checkpoints, distributed."""
