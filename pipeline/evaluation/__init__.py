"""Verification: ensemble scores (fair CRPS, debiased RMSE, unbiased spread/skill, rank histogram, ACC)."""

from pipeline.evaluation.ensemble import (
    acc,
    crps,
    ensemble_mean_rmse,
    latitude_weights,
    rank_histogram,
    spread,
    spread_skill_ratio,
)

__all__ = [
    "acc",
    "crps",
    "ensemble_mean_rmse",
    "latitude_weights",
    "rank_histogram",
    "spread",
    "spread_skill_ratio",
]
