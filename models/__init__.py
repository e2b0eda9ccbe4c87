"""velocast's domain-agnostic generative core: tensors in, tensors out.

Flow-matching convention, used everywhere in this package::

    x_t = (1 - t) * x0 + t * x1,   x0 ~ N(0, I) (noise),  x1 ~ data,   target velocity u = x1 - x0,

and sampling integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).
This package never imports ``pipeline`` or ``flows``.
"""

from models.guidance import null_condition
from models.objectives import LossOutput, Objective, ObjectiveSpec, Prediction, make_objective
from models.paths import Path, PathCoefficients, make_path
from models.samplers import SAMPLERS, Denoiser, SampleResult, make_sampler, sample, time_grid
from models.timesampling import make_time_sampler
from models.training import Batch, BatchSource, CheckpointError, TrainConfig, TrainResult, load_weights, train

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
