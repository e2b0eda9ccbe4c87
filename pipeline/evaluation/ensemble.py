"""Latitude-weighted ensemble verification scores, following WeatherBench-X conventions.

Every score reduces over all dimensions except ``preserve_dims`` (by default ``lead_time``): spatial
dimensions with area weights ``w(lat) ∝ cos(lat)`` (normalised to mean 1), every other dimension
(``init_time``, ...) with equal weights. ``member_dim`` indexes the ensemble (M members).

- fair CRPS (Ferro 2014): ``mean|x_m - y| - Σ_{m,m'} |x_m - x_m'| / (2 M (M-1))``
  (M = 1: the absolute error), via the ``scores`` library.
- debiased ensemble-mean RMSE: ``sqrt(mean[(x̄ - y)² - s²/M])`` with ``s²`` the unbiased ensemble variance;
  removes the finite-ensemble inflation ``E[(x̄-y)²] = MSE_∞ + σ²/M``. M = 1: the plain RMSE.
- spread: ``sqrt(mean s²)``.
- unbiased spread/skill ratio (Fortin et al. 2014): ``sqrt((M+1)/M) · spread / sqrt(mean (x̄ - y)²)``;
  1 for a statistically consistent ensemble of any size. Undefined (NaN) for M = 1.
- rank histogram: relative frequency of the truth's rank among the members (ties shared), M + 1 bins.
- ACC: per case (all preserved and non-spatial dims), the uncentred anomaly correlation
  ``Σ w f' o' / sqrt(Σ w f'² Σ w o'²)`` with ``f' = x̄ - c``, ``o' = y - c`` against a climatology ``c``,
  then averaged over the non-preserved non-spatial dims.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scores.probability
import xarray as xr

SPATIAL_DIMS: tuple[str, ...] = ("latitude", "longitude")


def latitude_weights(latitude: xr.DataArray) -> xr.DataArray:
    """Area weights ``cos(lat)`` normalised to mean 1 over the latitudes given."""
    weights = np.cos(np.deg2rad(latitude.astype(np.float64)))
    weights = weights.clip(min=0.0)
    return weights / weights.mean()


def _weights_for(array: xr.DataArray) -> xr.DataArray:
    if "latitude" in array.dims:
        return latitude_weights(array["latitude"])
    return xr.ones_like(array.isel({d: 0 for d in array.dims}), dtype=np.float64)


def _weighted_mean(array: xr.DataArray, preserve_dims: Sequence[str]) -> xr.DataArray:
    """Area-weighted mean over every dimension not preserved."""
    reduce = [d for d in array.dims if d not in preserve_dims]
    if not reduce:
        return array
    return array.weighted(_weights_for(array)).mean(dim=reduce)


def _check(forecast: xr.DataArray, truth: xr.DataArray, member_dim: str | None) -> None:
    if member_dim is not None and member_dim not in forecast.dims:
        raise ValueError(f"forecast has no ensemble dimension {member_dim!r} (dims: {forecast.dims})")
    if member_dim is not None and member_dim in truth.dims:
        raise ValueError(f"truth must not have the ensemble dimension {member_dim!r}")


def crps(forecast: xr.DataArray, truth: xr.DataArray, *, member_dim: str = "member",
         preserve_dims: Sequence[str] = ("lead_time",)) -> xr.DataArray:
    """Latitude-weighted fair CRPS; with a single member it equals the mean absolute error."""
    _check(forecast, truth, member_dim)
    members = forecast.sizes[member_dim]
    if members == 1:
        return _weighted_mean(abs(forecast.squeeze(member_dim, drop=True) - truth), preserve_dims)
    pointwise = scores.probability.crps_for_ensemble(
        forecast, truth, member_dim, method="fair", preserve_dims="all"
    )
    return _weighted_mean(pointwise, preserve_dims)


def _mean_and_variance(forecast: xr.DataArray, member_dim: str) -> tuple[xr.DataArray, xr.DataArray | None]:
    mean = forecast.mean(member_dim)
    if forecast.sizes[member_dim] < 2:
        return mean, None
    return mean, forecast.var(member_dim, ddof=1)


def ensemble_mean_rmse(forecast: xr.DataArray, truth: xr.DataArray, *, member_dim: str = "member",
                       preserve_dims: Sequence[str] = ("lead_time",), debiased: bool = True) -> xr.DataArray:
    """Latitude-weighted RMSE of the ensemble mean; ``debiased`` removes the ``s²/M`` finite-ensemble term.

    The debiased MSE is clipped at 0 before the square root (it can dip below for tiny samples).
    """
    _check(forecast, truth, member_dim)
    mean, variance = _mean_and_variance(forecast, member_dim)
    squared = (mean - truth) ** 2
    if debiased and variance is not None:
        squared = squared - variance / forecast.sizes[member_dim]
    return np.sqrt(_weighted_mean(squared, preserve_dims).clip(min=0.0))


def spread(forecast: xr.DataArray, *, member_dim: str = "member", preserve_dims: Sequence[str] = ("lead_time",)) -> xr.DataArray:
    """Ensemble spread ``sqrt(mean s²)`` (unbiased member variance, latitude-weighted mean)."""
    _, variance = _mean_and_variance(forecast, member_dim)
    if variance is None:
        raise ValueError("spread needs at least two members")
    return np.sqrt(_weighted_mean(variance, preserve_dims))


def spread_skill_ratio(forecast: xr.DataArray, truth: xr.DataArray, *, member_dim: str = "member",
                       preserve_dims: Sequence[str] = ("lead_time",)) -> xr.DataArray:
    """Unbiased spread/skill ratio ``sqrt((M+1)/M) · spread / RMSE(x̄)``; NaN for a single member."""
    _check(forecast, truth, member_dim)
    members = forecast.sizes[member_dim]
    mean, variance = _mean_and_variance(forecast, member_dim)
    skill = np.sqrt(_weighted_mean((mean - truth) ** 2, preserve_dims))
    if variance is None:
        return xr.full_like(skill, np.nan)
    ensemble_spread = np.sqrt(_weighted_mean(variance, preserve_dims))
    return np.sqrt((members + 1) / members) * ensemble_spread / skill


def rank_histogram(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    *,
    member_dim: str = "member",
    preserve_dims: Sequence[str] = ("lead_time",),
) -> xr.DataArray:
    """Latitude-weighted relative frequency of the truth's rank (dimension ``rank``, 1 .. M+1)."""
    _check(forecast, truth, member_dim)
    weights = _weights_for(forecast)
    return scores.probability.rank_histogram(
        forecast, truth, member_dim, preserve_dims=list(preserve_dims), weights=weights
    )


def acc(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    climatology: xr.DataArray,
    *,
    member_dim: str | None = "member",
    preserve_dims: Sequence[str] = ("lead_time",),
) -> xr.DataArray:
    """Uncentred anomaly correlation of the ensemble mean (or a deterministic forecast) per case.

    ``climatology`` must broadcast against ``truth`` (e.g. the climatology at each valid time).
    """
    if member_dim is not None and member_dim in forecast.dims:
        forecast = forecast.mean(member_dim)
    forecast_anomaly = forecast - climatology
    truth_anomaly = truth - climatology
    spatial = [d for d in SPATIAL_DIMS if d in forecast_anomaly.dims]
    weights = _weights_for(forecast_anomaly)

    def spatial_sum(array: xr.DataArray) -> xr.DataArray:
        return (array * weights).sum(dim=spatial)

    per_case = spatial_sum(forecast_anomaly * truth_anomaly) / np.sqrt(
        spatial_sum(forecast_anomaly**2) * spatial_sum(truth_anomaly**2)
    )
    reduce = [d for d in per_case.dims if d not in preserve_dims]
    return per_case.mean(dim=reduce) if reduce else per_case


def channel_scores(
    forecast: np.ndarray,
    truth: np.ndarray,
    latitude: np.ndarray,
    *,
    climatology: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every score above for one channel in one pass over plain arrays, reduced to one value per lead.

    ``forecast`` is ``(init_time, lead_time, member, latitude, longitude)``, ``truth`` and
    ``climatology`` are ``(init_time, lead_time, latitude, longitude)``; all values must be finite
    (the xarray functions above handle NaNs). The definitions are those of :func:`crps` (fair, via the
    sorted-member identity ``Σ_{m,m'} |x_m - x_m'| = 2 Σ_i (2i - M - 1) x_(i)`` that ``scores`` uses),
    :func:`ensemble_mean_rmse` (debiased), :func:`spread_skill_ratio`, :func:`acc` and
    :func:`rank_histogram` with ``preserve_dims=("lead_time",)``, computed in float64; the tests check
    that both give the same numbers. Returns ``crps``, ``rmse``, ``ssr`` (NaN for one member) of shape
    ``(lead,)``, ``acc`` when a climatology is given and ``rank_histogram`` ``(lead, M + 1)`` for M > 1.
    """
    if forecast.ndim != 5 or truth.shape != forecast.shape[:2] + forecast.shape[3:]:
        raise ValueError(f"forecast {forecast.shape} and truth {truth.shape} are not (case, lead, member, lat, lon) "
                         "and (case, lead, lat, lon)")
    n_init, n_lead, members, _, n_lon = forecast.shape
    weights = np.asarray(latitude_weights(xr.DataArray(np.asarray(latitude), dims="latitude")).values)
    norm = n_init * n_lon * weights.sum()

    def spatial_sum(array: np.ndarray) -> np.ndarray:  # (lead, lat, lon) -> area-weighted sum per lead
        return array.sum(axis=-1) @ weights

    # one init time at a time: small temporaries that stay in cache and in the allocator's heap
    sums = {name: np.zeros(n_lead) for name in ("abs_error", "pair_sum", "error2", "variance")}
    ranks = np.zeros((n_lead, members + 1))
    per_case_acc = np.zeros((n_init, n_lead))
    n_lat = weights.size
    coefficients = 2.0 * (2.0 * np.arange(1, members + 1) - members - 1)
    point_weights = np.broadcast_to(weights[:, None], (n_lead, n_lat, n_lon))
    rank_base = np.broadcast_to((np.arange(n_lead) * (members + 1))[:, None, None], (n_lead, n_lat, n_lon))
    for i in range(n_init):
        x = np.asarray(forecast[i], dtype=np.float64)  # (lead, member, lat, lon)
        y = np.asarray(truth[i], dtype=np.float64)[:, None]
        mean = x.mean(axis=1, keepdims=True)
        sums["abs_error"] += spatial_sum(np.abs(x - y).mean(axis=1))
        sums["error2"] += spatial_sum(((mean - y) ** 2)[:, 0])
        if members > 1:
            sums["variance"] += spatial_sum(((x - mean) ** 2).sum(axis=1) / (members - 1))
            # sorted in the stored precision (float64 conversion keeps the order), summed in float64
            ordered = np.sort(np.moveaxis(np.asarray(forecast[i]), 1, -1), axis=-1)
            sums["pair_sum"] += spatial_sum(ordered.astype(np.float64) @ coefficients)
            # the truth's rank: ties share the ranks from below + 1 to below_or_equal + 1 equally
            below = (y > x).sum(axis=1)
            tied = (y >= x).sum(axis=1) - below
            share = point_weights / (tied + 1)
            for offset in range(int(tied.max()) + 1):
                ranks += np.bincount((rank_base + np.minimum(below + offset, members)).ravel(),
                                     weights=np.where(offset <= tied, share, 0.0).ravel(),
                                     minlength=ranks.size).reshape(ranks.shape)
        if climatology is not None:
            c = np.asarray(climatology[i], dtype=np.float64)
            f_anomaly, o_anomaly = mean[:, 0] - c, y[:, 0] - c
            per_case_acc[i] = spatial_sum(f_anomaly * o_anomaly) / np.sqrt(
                spatial_sum(f_anomaly**2) * spatial_sum(o_anomaly**2))
    means = {name: total / norm for name, total in sums.items()}
    out: dict[str, np.ndarray] = {}
    if members == 1:
        out["crps"] = means["abs_error"]
        out["rmse"] = np.sqrt(means["error2"].clip(min=0.0))
        out["ssr"] = np.full(n_lead, np.nan)
    else:
        out["crps"] = means["abs_error"] - means["pair_sum"] / (2 * members * (members - 1))
        out["rmse"] = np.sqrt((means["error2"] - means["variance"] / members).clip(min=0.0))
        out["ssr"] = np.sqrt((members + 1) / members) * np.sqrt(means["variance"]) / np.sqrt(means["error2"])
        out["rank_histogram"] = ranks / ranks.sum(axis=-1, keepdims=True)
    if climatology is not None:
        out["acc"] = per_case_acc.mean(axis=0)
    return out
