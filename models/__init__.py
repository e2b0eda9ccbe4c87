"""velocast's domain-agnostic generative core: tensors in, tensors out.

Flow-matching convention, used everywhere in this package::

    x_t = (1 - t) * x0 + t * x1,   x0 ~ N(0, I) (noise),  x1 ~ data,   target velocity u = x1 - x0,

and sampling integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).
This package never imports ``pipeline`` or ``flows``.
"""

import importlib
from typing import Any

# Names re-exported lazily (PEP 562): importing a light submodule (``models.progress``) never imports torch.
_EXPORTS: dict[str, str] = {
    "null_condition": "models.guidance",
    "LossOutput": "models.objectives",
    "Objective": "models.objectives",
    "ObjectiveSpec": "models.objectives",
    "Prediction": "models.objectives",
    "make_objective": "models.objectives",
    "Path": "models.paths",
    "PathCoefficients": "models.paths",
    "make_path": "models.paths",
    "SAMPLERS": "models.samplers",
    "Denoiser": "models.samplers",
    "SampleResult": "models.samplers",
    "make_sampler": "models.samplers",
    "sample": "models.samplers",
    "time_grid": "models.samplers",
    "make_time_sampler": "models.timesampling",
    "Batch": "models.training",
    "BatchSource": "models.training",
    "CheckpointError": "models.training",
    "TrainConfig": "models.training",
    "TrainResult": "models.training",
    "load_weights": "models.training",
    "train": "models.training",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = [
    "SAMPLERS",
    "Batch",
    "BatchSource",
    "CheckpointError",
    "Denoiser",
    "LossOutput",
    "Objective",
    "ObjectiveSpec",
    "Path",
    "PathCoefficients",
    "Prediction",
    "SampleResult",
    "TrainConfig",
    "TrainResult",
    "load_weights",
    "make_objective",
    "make_path",
    "make_sampler",
    "make_time_sampler",
    "null_condition",
    "sample",
    "time_grid",
    "train",
]
