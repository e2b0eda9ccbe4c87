"""The embedded Held–Suarez atmosphere: forcing from the paper, determinism, cache, restarts and the
perfect-model ensemble. Runs are tiny (hours of spin-up, a day or two) to fit the test budget."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.errors import UserError
from pipeline.weather.simulate import cache
from pipeline.weather.simulate.ensemble import perfect_model_ensemble
from pipeline.weather.simulate.model import AtmosphereConfig, AtmosphereModel

TINY = {"spinup_days": 0.25, "days": 0.5}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private simulation cache (VELOCAST_CACHE) for the test."""
    monkeypatch.setenv("VELOCAST_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def model() -> AtmosphereModel:
    return AtmosphereModel(AtmosphereConfig(**TINY))


def _per_day(model: AtmosphereModel, nondim_rate) -> np.ndarray:
    """Nondimensional rate → per day (time scale 1/(2Ω))."""
    return np.asarray(nondim_rate) * 2 * 7.292e-5 * 86400


def test_equilibrium_temperature_follows_held_suarez_eq_2(model):
    """T_eq = max(200, [315 − 60 sin²φ − 10 log(p/p0) cos²φ](p/p0)^κ): surface 315 K at the equator
    (≈ 255 K near the poles), 200 K floor aloft."""
    f = model.forcing
    p0 = f.p0
    teq = f.equilibrium_temperature(torch_full(model, p0)).numpy()  # (layer, lon, lat)
    sigma = model.coords.vertical.coordinates.centers
    lat = model.grid.latitudes
    eq = int(np.argmin(np.abs(lat)))
    k = -1
    kappa = 2 / 7
    expected = (315 - 60 * np.sin(lat[eq]) ** 2 - 10 * np.log(sigma[k]) * np.cos(lat[eq]) ** 2) * sigma[k] ** kappa
    assert teq[k, 0, eq] == pytest.approx(max(200.0, expected), rel=1e-5)
    pole = int(np.argmax(lat))
    expected_pole = (315 - 60 * np.sin(lat[pole]) ** 2 - 10 * np.log(sigma[k]) * np.cos(lat[pole]) ** 2) * sigma[k] ** kappa
    assert teq[k, 0, pole] == pytest.approx(expected_pole, rel=1e-5)
    assert teq[0].min() == pytest.approx(200.0)  # top layer: the floor


def torch_full(model, value):
    import torch

    return torch.full((1, *model.grid.nodal_shape), float(value))


def test_relaxation_and_friction_rates_follow_the_paper(model):
    """k_T = k_a + (k_s − k_a)·max(0,(σ−0.7)/0.3)·cos⁴φ; k_v = k_f·max(0,(σ−0.7)/0.3) (per day)."""
    f = model.forcing
    sigma = model.coords.vertical.coordinates.centers
    lat = model.grid.latitudes
    eq = int(np.argmin(np.abs(lat)))
    cut = max(0.0, (sigma[-1] - 0.7) / 0.3)
    k_t = _per_day(model, f.k_t[-1, 0, eq].item())
    assert k_t == pytest.approx(1 / 40 + (1 / 4 - 1 / 40) * cut * np.cos(lat[eq]) ** 4, rel=1e-4)
    assert _per_day(model, f.k_t[0, 0, eq].item()) == pytest.approx(1 / 40, rel=1e-4)
    k_v = _per_day(model, f.k_v[:, 0, 0].numpy())
    assert np.all(k_v[sigma < 0.7] == 0)
    assert k_v[-1] == pytest.approx(cut, rel=1e-4)


def test_simulation_is_deterministic_for_a_seed_and_cached(cache_dir, tmp_path):
    """Same seed → identical fields (a fresh run equals the cached one); the second call reuses the
    cache; another seed gives different weather."""
    cfg = AtmosphereConfig(**TINY, seed=1)
    first = cache.simulate(cfg, progress=False)
    stamp = (first / "zarr.json").stat().st_mtime_ns
    again = cache.simulate(cfg, progress=False)
    assert again == first and (again / "zarr.json").stat().st_mtime_ns == stamp
    fresh = tmp_path / "fresh.zarr"
    cache.run_to_store(cfg, fresh, progress=False)
    a, b = xr.open_zarr(first), xr.open_zarr(fresh)
    np.testing.assert_array_equal(a["temperature"].values, b["temperature"].values)
    other = xr.open_zarr(cache.simulate(AtmosphereConfig(**TINY, seed=2), progress=False))
    assert not np.array_equal(a["temperature"].values, other["temperature"].values)
    # canonical schema and plausible values
    assert a["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert a.sizes == {"time": 2, "level": 3, "latitude": 32, "longitude": 64}
    assert np.all(np.diff(a["latitude"].values) > 0) and a["longitude"].values.max() < 360
    z = a["geopotential"].isel(time=-1).mean(("latitude", "longitude")).values
    assert z[0] > z[1] > z[2] > 0  # 250 hPa above 500 above 850
    assert 9.5e4 < float(a["surface_pressure"].mean()) < 1.05e5
    assert 150 < float(a["temperature"].min()) and float(a["temperature"].max()) < 330


def test_perfect_model_ensemble_restarts_exactly_and_spreads(cache_dir):
    """With zero perturbation every member reproduces the truth run (exact restart from the saved
    modal state); with a perturbation members differ and the forecast schema is complete."""
    cfg = AtmosphereConfig(**TINY, seed=0)
    truth_path = cache.simulate(cfg, progress=False)
    truth = xr.open_zarr(truth_path)
    init = truth["time"].values[0]
    zero = perfect_model_ensemble(truth=truth_path, init_times=[init], members=2, lead="6h",
                                  amplitude_k=0.0, progress=False)
    assert zero["temperature"].dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert zero.sizes["lead_time"] == 2
    for j in range(2):
        ref = truth["temperature"].isel(time=j).values
        np.testing.assert_allclose(zero["temperature"].isel(init_time=0, lead_time=j, member=1).values, ref, rtol=0, atol=2e-3)
    pert = perfect_model_ensemble(truth=truth_path, init_times=[init], members=3, lead="6h",
                                  amplitude_k=0.5, perturbation="white-noise", progress=False)
    t0 = pert["temperature"].isel(init_time=0, lead_time=0)
    spread0 = float(t0.std("member").mean())
    assert 0.05 < spread0 < 1.0
    assert np.all(pert["valid_time"].values[0] == init + pert["lead_time"].values)
    assert float(pert["u_component_of_wind"].isel(lead_time=-1).std("member").mean()) > 0
    # state-difference perturbations: eps*(X_a - X_b), temperature part exactly amplitude_k K rms
    from pipeline.weather.simulate.ensemble import _states_at, perturb_state_difference

    model = AtmosphereModel(cfg)
    state = _states_at(str(truth_path), [init])[0]
    batch = perturb_state_difference(model, state, members=4, amplitude_k=0.7, seed=3, truth=str(truth_path))
    d_t = model.grid.to_nodal(batch.temperature_variation - state.temperature_variation)
    np.testing.assert_allclose(d_t.pow(2).mean(dim=(-3, -2, -1)).sqrt().numpy(), 0.7, rtol=1e-4)
    assert float((batch.vorticity - state.vorticity).abs().max()) > 0  # balanced: winds perturbed too
    with pytest.raises(UserError, match="not a stored time"):
        perfect_model_ensemble(truth=truth_path, init_times=["1999-01-01"], members=2, lead="6h", progress=False)


def test_unobserved_perturbations_keep_the_stored_channels_and_change_the_rest(cache_dir):
    """The honest ceiling's perturbations: the stored channels' part of a climatological anomaly is projected
    out (CGLS drives ‖Jδ‖/‖Jδ₀‖ down as it iterates), a large part of the anomaly survives in what the store
    does not see, and log p_s is untouched."""
    from pipeline.weather.simulate.ensemble import _states_at, perturb_unobserved

    cfg = AtmosphereConfig(**TINY, seed=0)
    truth_path = cache.simulate(cfg, progress=False)
    model = AtmosphereModel(cfg)
    state = _states_at(str(truth_path), [xr.open_zarr(truth_path)["time"].values[0]])[0]
    raw, untouched = perturb_unobserved(model, state, members=3, seed=1, truth=str(truth_path), iterations=0)
    kept, footprint = perturb_unobserved(model, state, members=3, seed=1, truth=str(truth_path), iterations=600,
                                         tolerance=0.0)
    assert untouched == pytest.approx(1.0) and footprint < 0.15, footprint
    assert float((kept.log_surface_pressure - state.log_surface_pressure).abs().max()) == 0.0

    def stored_rms(batch, name):
        return float(np.sqrt(((model.fields(batch)[name] - model.fields(state)[name]) ** 2).mean()))

    for name in ("temperature", "geopotential", "u_component_of_wind"):
        assert stored_rms(kept, name) < 0.2 * stored_rms(raw, name), name  # the store barely sees it …
    for field in ("vorticity", "divergence", "temperature_variation"):  # … yet much of the anomaly is kept
        size = lambda batch: float((getattr(batch, field) - getattr(state, field)).norm())  # noqa: E731
        assert size(kept) > 0.25 * size(raw), field


def test_perfect_model_unobserved_ensemble_records_its_footprint_and_refuses_an_amplitude(cache_dir, monkeypatch):
    """`perturbation="unobserved"` runs through the ensemble (members differ, in the forecast schema), the
    footprint the projection left travels with each init time, and --amplitude, which does not size it, is
    refused. (How little the store sees of the perturbation is the test above: this tiny truth is a nearly
    resting atmosphere, too quiet to compare spreads in.)"""
    from pipeline.weather.simulate import ensemble

    monkeypatch.setattr(ensemble, "UNOBSERVED_ITERATIONS", 600)  # the default converges to 1 %, ~30 s here
    cfg = AtmosphereConfig(**TINY, seed=0)
    truth_path = cache.simulate(cfg, progress=False)
    init = xr.open_zarr(truth_path)["time"].values[0]
    kwargs = dict(truth=truth_path, init_times=[init], members=3, lead="12h", progress=False)
    unobserved = perfect_model_ensemble(perturbation="unobserved", **kwargs)
    assert unobserved["temperature"].dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert 0 < float(unobserved["observed_footprint"].sel(init_time=init)) < 0.15
    assert float(unobserved["u_component_of_wind"].isel(lead_time=-1).std("member").max()) > 0
    assert "CGLS" in unobserved.attrs["perturbation"] and unobserved.attrs["amplitude_k"] is None
    with pytest.raises(UserError, match="drop --amplitude"):
        perfect_model_ensemble(perturbation="unobserved", amplitude_k=0.5, **kwargs)


def test_perfect_model_truth_is_exchangeable_with_the_members(cache_dir):
    """Members perturb an analysis that is the truth plus one more draw: at t = 0 the truth is as far
    from the ensemble mean as a member is (spread ≈ error); centred on the truth, the mean sits on it."""
    cfg = AtmosphereConfig(**TINY, seed=0)
    truth_path = cache.simulate(cfg, progress=False)
    truth = xr.open_zarr(truth_path)
    init = truth["time"].values[0]
    observed = truth["temperature"].isel(time=0).values
    kwargs = dict(truth=truth_path, init_times=[init], members=16, lead="6h", amplitude_k=0.5,
                  perturbation="white-noise", progress=False)
    for exchangeable, low, high in ((False, 0.0, 0.5), (True, 0.6, 1.6)):
        t0 = perfect_model_ensemble(exchangeable=exchangeable, **kwargs)["temperature"].isel(init_time=0, lead_time=0)
        error = float(np.sqrt(((t0.mean("member").values - observed) ** 2).mean()))
        spread = float(np.sqrt(t0.var("member", ddof=1).mean()))
        ratio = np.sqrt(17 / 16) * spread / error  # unbiased spread/skill at t = 0
        assert low < 1 / ratio < high, (exchangeable, ratio)


def test_cli_simulate_atmosphere_then_perfect_model_ensemble(cache_dir, tmp_path, capsys):
    """`simulate atmosphere` writes a training store (stats + model_state); `--perturb-from` writes a
    forecast-schema Zarr v3 store; the builtin: source reuses the cached run."""
    from pipeline.cli import main
    from pipeline.weather.ingest import ingest
    from pipeline.weather.recipe import Recipe

    out = tmp_path / "hs.zarr"
    with pytest.raises(SystemExit) as done:
        main(["simulate", "atmosphere", "--days", "0.5", "--spinup-days", "0.25", "--seed", "0",
              "--out", str(out), "--no-compile", "--no-progress"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "temperature_850" in printed and "simulated days per second" in printed
    ds = xr.open_zarr(out)
    assert len(ds.attrs["normalization"]["channels"]) == 13 and "geopotential_250" in ds.attrs["normalization"]["channels"]
    assert ds.attrs["simulator_config"]["spinup_days"] == 0.25
    assert xr.open_zarr(out, group="model_state").sizes["time"] == 2
    fc = tmp_path / "pm.zarr"
    with pytest.raises(SystemExit) as done:
        main(["simulate", "atmosphere", "--perturb-from", str(out), "--init-times", "2000-01-01T00,2000-01-01T06",
              "--members", "2", "--lead", "6h", "--out", str(fc), "--no-compile", "--no-progress"])
    assert done.value.code in (0, None)
    ens = xr.open_zarr(fc)
    assert dict(ens.sizes) == {"init_time": 2, "lead_time": 2, "member": 2, "level": 3, "latitude": 32, "longitude": 64}
    assert ens["surface_pressure"].dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    recipe = Recipe.model_validate({
        "sources": [{"path": "builtin:held-suarez?days=0.5&spinup_days=0.25&seed=0"}],
        "variables": {"temperature": {"levels": [500]}, "surface_pressure": {}},
    })
    again = xr.open_zarr(ingest(recipe, tmp_path / "b.zarr", progress=False))
    np.testing.assert_array_equal(again["temperature"].values, ds["temperature"].sel(level=[500]).values)


def test_perfect_model_batches_init_times_without_changing_them(cache_dir, monkeypatch):
    """Several init times integrated in one batch give each the same members as integrating it alone."""
    from pipeline.weather.simulate import ensemble

    cfg = AtmosphereConfig(**TINY, seed=0)
    truth_path = cache.simulate(cfg, progress=False)
    inits = xr.open_zarr(truth_path)["time"].values[:2]
    kwargs = dict(truth=truth_path, init_times=inits, members=2, lead="12h", amplitude_k=0.5, progress=False)
    batched = perfect_model_ensemble(**kwargs)
    monkeypatch.setattr(ensemble, "BATCH_MEMBERS", 1)  # one init time per batch
    alone = perfect_model_ensemble(**kwargs)
    assert batched.sizes["init_time"] == 2
    np.testing.assert_array_equal(batched["init_time"].values, alone["init_time"].values)
    for name in ("temperature", "surface_pressure"):
        np.testing.assert_allclose(batched[name].values, alone[name].values, rtol=1e-4, atol=1e-3)
    assert float(np.abs(batched["temperature"].isel(init_time=0) - batched["temperature"].isel(init_time=1)).max()) > 0.1


def test_diurnal_heating_warms_land_in_the_afternoon_and_adds_no_energy(cache_dir):
    """With diurnal heating, the near-surface temperature over land peaks in the local afternoon and bottoms
    out near dawn, over sea the cycle is weaker; the heating's daily mean is zero everywhere (c̄ term)."""
    import pandas as pd

    config = AtmosphereConfig(spinup_days=0.0, days=2.0, output_hours=1, diurnal_heating_k_per_day=40.0)
    store = xr.open_zarr(cache.simulate(config, progress=False))
    assert {"2m_temperature", "land_sea_mask"} <= set(store.data_vars)
    t2 = store["2m_temperature"].isel(time=slice(24, 48)).load()  # the second day
    land = store["land_sea_mask"].values > 0.5
    assert 0.2 < land.mean() < 0.6
    hours = pd.DatetimeIndex(t2["time"].values).hour.to_numpy()
    lon = store["longitude"].values
    local = np.mod(hours[:, None] + lon[None, :] / 15.0, 24.0)  # (time, lon)
    anomaly = (t2 - t2.mean("time")).values  # (time, lat, lon)
    tropics = np.abs(store["latitude"].values) < 30
    afternoon = (local >= 13) & (local <= 17)
    dawn = (local >= 4) & (local <= 7)
    warm = [anomaly[:, i][afternoon & land[i][None, :]].mean() for i in np.flatnonzero(tropics)]
    cold = [anomaly[:, i][dawn & land[i][None, :]].mean() for i in np.flatnonzero(tropics)]
    assert np.nanmean(warm) - np.nanmean(cold) > 1.0  # K: a clear diurnal range over tropical land
    sea_range = np.nanmean([anomaly[:, i][afternoon & ~land[i][None, :]].mean() for i in np.flatnonzero(tropics)])
    assert sea_range < np.nanmean(warm)
    model = AtmosphereModel(config)
    daily = []
    for hour in np.arange(0.0, 24.0, 0.25):
        model.forcing.set_clock(hour, 80.0)
        daily.append(model.forcing.sun.numpy())
    np.testing.assert_allclose(np.mean(daily, axis=0), 0.0, atol=5e-3)


def test_diurnal_runs_need_the_clock_to_advance():
    model = AtmosphereModel(AtmosphereConfig(spinup_days=0.0, days=0.5, diurnal_heating_k_per_day=10.0))
    with pytest.raises(ValueError, match="hours since the start"):
        model.advance(model.initial_state(0), 1)
