"""Ensemble scores against values computed by hand with explicit loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from pipeline.evaluation import acc, crps, ensemble_mean_rmse, latitude_weights, rank_histogram, spread, spread_skill_ratio

LATS = np.array([-60.0, 0.0, 60.0])
LONS = np.array([0.0, 90.0, 180.0, 270.0])


def make(values: np.ndarray, dims: tuple[str, ...]) -> xr.DataArray:
    coords = {"latitude": LATS, "longitude": LONS}
    return xr.DataArray(values, dims=dims, coords={d: coords[d] for d in dims if d in coords})


@pytest.fixture
def case() -> tuple[xr.DataArray, xr.DataArray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    fc = rng.normal(size=(2, 5, 3, 4))  # lead, member, lat, lon
    obs = rng.normal(size=(2, 3, 4))
    forecast = make(fc, ("lead_time", "member", "latitude", "longitude"))
    truth = make(obs, ("lead_time", "latitude", "longitude"))
    return forecast, truth, fc, obs


def weights_by_hand() -> np.ndarray:
    w = np.cos(np.deg2rad(LATS))  # 0.5, 1, 0.5
    return w / w.mean()


def weighted_mean_by_hand(field: np.ndarray) -> float:
    w = weights_by_hand()[:, None] * np.ones((1, LONS.size))
    return float((field * w).sum() / w.sum())


def test_latitude_weights_are_cosines_with_mean_one() -> None:
    w = latitude_weights(xr.DataArray(LATS, dims="latitude"))
    np.testing.assert_allclose(w.values, [0.75, 1.5, 0.75])


def test_fair_crps_matches_the_double_sum(case) -> None:
    forecast, truth, fc, obs = case
    expected = []
    for lead in range(2):
        field = np.zeros((3, 4))
        for i, j in itertools.product(range(3), range(4)):
            x, y, m = fc[lead, :, i, j], obs[lead, i, j], fc.shape[1]
            pair_sum = sum(abs(a - b) for a in x for b in x)
            field[i, j] = np.mean(abs(x - y)) - pair_sum / (2 * m * (m - 1))
        expected.append(weighted_mean_by_hand(field))
    np.testing.assert_allclose(crps(forecast, truth).values, expected, rtol=1e-10)


def test_crps_of_one_member_is_the_absolute_error(case) -> None:
    forecast, truth, fc, obs = case
    single = forecast.isel(member=[0])
    expected = [weighted_mean_by_hand(abs(fc[k, 0] - obs[k])) for k in range(2)]
    np.testing.assert_allclose(crps(single, truth).values, expected, rtol=1e-12)


def test_debiased_rmse_subtracts_the_variance_over_m(case) -> None:
    forecast, truth, fc, obs = case
    m = fc.shape[1]
    expected_raw, expected_debiased = [], []
    for k in range(2):
        err2 = (fc[k].mean(0) - obs[k]) ** 2
        var = fc[k].var(0, ddof=1)
        expected_raw.append(np.sqrt(weighted_mean_by_hand(err2)))
        expected_debiased.append(np.sqrt(max(weighted_mean_by_hand(err2 - var / m), 0.0)))
    np.testing.assert_allclose(ensemble_mean_rmse(forecast, truth, debiased=False).values, expected_raw)
    np.testing.assert_allclose(ensemble_mean_rmse(forecast, truth).values, expected_debiased)


def test_spread_skill_ratio_uses_the_fortin_factor(case) -> None:
    forecast, truth, fc, obs = case
    m = fc.shape[1]
    expected = []
    for k in range(2):
        skill = np.sqrt(weighted_mean_by_hand((fc[k].mean(0) - obs[k]) ** 2))
        sprd = np.sqrt(weighted_mean_by_hand(fc[k].var(0, ddof=1)))
        expected.append(np.sqrt((m + 1) / m) * sprd / skill)
    np.testing.assert_allclose(spread_skill_ratio(forecast, truth).values, expected)
    np.testing.assert_allclose(
        spread(forecast).values, [np.sqrt(weighted_mean_by_hand(fc[k].var(0, ddof=1))) for k in range(2)]
    )


def test_consistent_ensemble_has_ssr_near_one_and_flat_ranks() -> None:
    """Truth and members drawn from the same distribution: SSR ≈ 1, rank histogram ≈ uniform."""
    rng = np.random.default_rng(1)
    n_cases, m = 4000, 4
    centre = rng.normal(size=(n_cases, 1, 3, 4)) * 3
    members = centre + rng.normal(size=(n_cases, m, 3, 4))
    obs = centre[:, 0] + rng.normal(size=(n_cases, 3, 4))
    forecast = make(members, ("init_time", "member", "latitude", "longitude"))
    truth = make(obs, ("init_time", "latitude", "longitude"))
    ssr = float(spread_skill_ratio(forecast, truth, preserve_dims=()))
    assert abs(ssr - 1.0) < 0.03
    # An under-dispersive ensemble (half the spread) is detected.
    narrow = make(centre + 0.5 * (members - centre), forecast.dims)
    assert float(spread_skill_ratio(narrow, truth, preserve_dims=())) < 0.7
    hist = rank_histogram(forecast, truth, preserve_dims=())
    assert hist.sizes["rank"] == m + 1
    np.testing.assert_allclose(hist.values, 1 / (m + 1), atol=0.01)
    # Debiasing recovers the infinite-ensemble RMSE (sqrt(1) = 1 here) from a 4-member ensemble.
    assert abs(float(ensemble_mean_rmse(forecast, truth, preserve_dims=())) - 1.0) < 0.03
    assert float(ensemble_mean_rmse(forecast, truth, preserve_dims=(), debiased=False)) > 1.08


def test_rank_histogram_counts_ranks_by_hand() -> None:
    members = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # 2 cases, 3 members, one grid point
    obs = np.array([0.5, 2.5])  # ranks 1 and 3
    forecast = xr.DataArray(members, dims=("init_time", "member"))
    truth = xr.DataArray(obs, dims=("init_time",))
    hist = rank_histogram(forecast, truth, preserve_dims=())
    np.testing.assert_allclose(hist.values, [0.5, 0.0, 0.5, 0.0])


def test_acc_is_one_for_perfect_anomalies_and_minus_one_for_flipped() -> None:
    rng = np.random.default_rng(2)
    clim = make(rng.normal(size=(3, 4)), ("latitude", "longitude"))
    anomaly = make(rng.normal(size=(2, 3, 4)), ("lead_time", "latitude", "longitude"))
    truth = clim + anomaly
    assert np.allclose(acc(truth, truth, clim, member_dim=None).values, 1.0)
    assert np.allclose(acc(clim - anomaly, truth, clim, member_dim=None).values, -1.0)
    # By hand for lead 0 with a scaled + noisy forecast.
    fc = clim + 2 * anomaly + make(rng.normal(size=(2, 3, 4)), anomaly.dims)
    f = (fc - clim).transpose(*anomaly.dims).values[0]
    o = anomaly.values[0]
    w = weights_by_hand()[:, None]
    expected = (w * f * o).sum() / np.sqrt((w * f * f).sum() * (w * o * o).sum())
    np.testing.assert_allclose(acc(fc, truth, clim, member_dim=None).sel(lead_time=0), expected)


def test_scores_refuse_truth_with_a_member_dimension(case) -> None:
    forecast, _, _, _ = case
    with pytest.raises(ValueError, match="member"):
        crps(forecast, forecast)


@pytest.mark.parametrize("members, ties", [(6, False), (6, True), (1, False)])
def test_channel_scores_equal_the_xarray_scores(members: int, ties: bool) -> None:
    """The one-pass array kernel gives the numbers of crps/rmse/ssr/acc/rank_histogram (ties included)."""
    from pipeline.evaluation.ensemble import channel_scores

    rng = np.random.default_rng(5)
    dims = ("init_time", "lead_time", "member", "latitude", "longitude")
    fc = rng.normal(size=(3, 2, members, LATS.size, LONS.size)).astype(np.float32)
    obs = 1.3 * rng.normal(size=(3, 2, LATS.size, LONS.size)) + 0.2
    clim = 0.3 * obs + 0.1 * rng.normal(size=obs.shape)
    if ties:  # a coarse grid of values: the truth often equals one or more members
        fc, obs = np.round(fc * 2) / 2, np.round(obs * 2) / 2
    forecast = make(fc.astype(np.float64), dims)
    truth = make(obs, ("init_time", "lead_time", "latitude", "longitude"))
    climatology = make(clim, truth.dims)
    got = channel_scores(fc, obs, LATS, climatology=clim)
    np.testing.assert_allclose(got["crps"], crps(forecast, truth).values, rtol=1e-12)
    np.testing.assert_allclose(got["rmse"], ensemble_mean_rmse(forecast, truth).values, rtol=1e-12)
    np.testing.assert_allclose(got["acc"], acc(forecast, truth, climatology).values, rtol=1e-12)
    if members == 1:
        assert np.isnan(got["ssr"]).all() and "rank_histogram" not in got
        return
    np.testing.assert_allclose(got["ssr"], spread_skill_ratio(forecast, truth).values, rtol=1e-12)
    expected = rank_histogram(forecast, truth).transpose("lead_time", "rank").values
    np.testing.assert_allclose(got["rank_histogram"], expected, rtol=1e-12, atol=1e-15)

