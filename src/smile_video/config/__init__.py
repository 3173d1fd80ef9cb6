"""Typed configuration: nested dataclasses, YAML files and ``section.key=value`` overrides.

The config is resolved once, at the edge (the CLI): unknown keys and wrong types are rejected before any
work, naming the key, the expected type and the closest valid key. Library code receives a sub-config or
explicit arguments, never the whole program's namespace.

Resolution order (later wins): dataclass defaults -> model preset -> YAML file(s) -> command-line overrides.

Modules: `checks` (ConfigError and value checks), `sections` (the pretraining sections and model presets),
`evaluation` (probe and finetune sections), `loading` (YAML and overrides into a job).
"""

from .checks import ConfigError
from .evaluation import FinetuneConfig, FinetuneJob, KnnJob, ProbeConfig, ProbeJob
from .loading import apply_overrides, load_config, save_config, to_dict, to_yaml
from .sections import (
    MODEL_PRESETS,
    DataConfig,
    MaskConfig,
    ModelConfig,
    MotionConfig,
    PretrainJob,
    RunConfig,
    TeacherConfig,
    TrainConfig,
)

__all__ = [
    "ConfigError",
    "MODEL_PRESETS",
    "ModelConfig",
    "MaskConfig",
    "MotionConfig",
    "TeacherConfig",
    "DataConfig",
    "TrainConfig",
    "RunConfig",
    "ProbeConfig",
    "FinetuneConfig",
    "PretrainJob",
    "ProbeJob",
    "KnnJob",
    "FinetuneJob",
    "load_config",
    "apply_overrides",
    "to_dict",
    "to_yaml",
    "save_config",
]
