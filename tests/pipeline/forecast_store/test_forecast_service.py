"""The HTTP service over a real uvicorn server on loopback (SYNTHETIC store)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
import xarray as xr
from fs_helpers import INITS, PROV, SMALL, ServerThread

from pipeline.forecast_store import ForecastStore, synthetic_forecast
from pipeline.forecast_store.service import create_app


@pytest.fixture(scope="module")
def live_store(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the small store (this module appends a cycle to it)."""
    path = tmp_path_factory.mktemp("svc") / "store.icechunk"
    shutil.copytree(small_store, path)
    return path


@pytest.fixture(scope="module")
def server(live_store: Path):
    with ServerThread(create_app(str(live_store), poll_seconds=0.2)) as srv:
        yield srv


def test_point_json_has_units_and_etag_and_304(server: ServerThread) -> None:
    """A point query answers with units, an ETag of the snapshot, and 304 on If-None-Match."""
    with httpx.Client(base_url=server.url) as c:
        r = c.get("/v1/point", params={"variable": "temperature", "level": 850, "lat": 45, "lon": 7,
                                       "quantiles": "0.1,0.9", "members": "true"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["units"] == "K" and doc["fields"]["q90"]["units"] == "K"
        assert len(doc["fields"]["members"]["values"]) == SMALL["leads"]
        etag = r.headers["etag"]
        assert etag == f'"{doc["snapshot"]}"' and r.headers["cache-control"] == "no-cache"
        again = c.get("/v1/point", params={"variable": "temperature", "level": 850, "lat": 45, "lon": 7},
                      headers={"If-None-Match": etag})
        assert again.status_code == 304
        pinned = c.get("/v1/point", params={"variable": "2m_temperature", "lat": 0, "lon": 0,
                                            "init_time": INITS[0]})
        assert pinned.status_code == 200 and "max-age" in pinned.headers["cache-control"]


def test_region_probability_grid_and_formats(server: ServerThread, tmp_path: Path) -> None:
    """Region stats, region/point probabilities, the page's grid, CSV and NetCDF all answer."""
    with httpx.Client(base_url=server.url) as c:
        box = {"lat_min": -30, "lat_max": 30, "lon_min": 330, "lon_max": 20}
        r = c.get("/v1/region", params={"variable": "2m_temperature", "lead": "12h", **box})
        assert r.status_code == 200 and r.json()["coords"]["longitude"][0] == 360 - 22.5
        p = c.get("/v1/probability", params={"variable": "2m_temperature", "lead": 12, "threshold": 295, **box})
        assert p.status_code == 200 and 0 <= p.json()["area_mean_probability"] <= 1
        pp = c.get("/v1/probability", params={"variable": "2m_temperature", "lat": 0, "lon": 0,
                                              "threshold": 295, "direction": "below"})
        assert pp.status_code == 200 and pp.json()["fields"]["probability"]["units"] == "1"
        g = c.get("/v1/grid", params={"variable": "temperature", "level": 500, "lead": 6, "stat": "spread"})
        assert g.status_code == 200 and len(g.json()["values"]) == SMALL["grid"][1]
        csv = c.get("/v1/point", params={"variable": "2m_temperature", "lat": 0, "lon": 0, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv") and "# units: K" in csv.text
        nc = c.get("/v1/point", params={"variable": "2m_temperature", "lat": 0, "lon": 0, "format": "netcdf"})
        (tmp_path / "p.nc").write_bytes(nc.content)
        assert xr.open_dataset(tmp_path / "p.nc")["mean"].attrs["units"] == "K"
        assert c.get("/health").json()["status"] == "ok"
        info = c.get("/v1/info").json()
        assert info["variables"]["temperature"]["units"] == "K" and info["levels"] == [500, 850]
        cycles = c.get("/v1/cycles").json()
        assert [row["tag"] for row in cycles][:2] == ["cycle-20200101T0000", "cycle-20200101T0600"]
        assert "/v1/point" in c.get("/openapi.json").json()["paths"]
        assert c.get("/docs").status_code == 200
        assert "<canvas" in c.get("/").text


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"variable": "temperature", "level": 850, "lat": 95, "lon": 0}, "lat"),
        ({"variable": "precip", "lat": 0, "lon": 0}, "unknown variable"),
        ({"variable": "2m_temperature", "lat": 0, "lon": 0, "init_time": "yesterday"}, "init_time"),
        ({"variable": "2m_temperature", "lat": 0, "lon": 0, "init_time": "1990-01-01"}, "no cycle"),
        ({"variable": "2m_temperature", "lat": "abc", "lon": 0}, "lat"),
    ],
)
def test_bad_requests_are_422_with_a_clear_message(server: ServerThread, params: dict, needle: str) -> None:
    """Out-of-range coordinates, unknown variables and bad times → 422 naming the problem."""
    r = httpx.get(server.url + "/v1/point", params=params)
    assert r.status_code == 422
    assert needle in r.json()["detail"]


def test_bearer_token_is_required_when_set(live_store: Path) -> None:
    """With a token, /v1 needs 'Authorization: Bearer TOKEN'; /health stays open."""
    with ServerThread(create_app(str(live_store), token="s3cret")) as srv, httpx.Client(base_url=srv.url) as c:
        params = {"variable": "2m_temperature", "lat": 0, "lon": 0}
        assert c.get("/v1/point", params=params).status_code == 401
        assert c.get("/v1/point", params=params, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/point", params=params, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200


def test_service_reopens_when_a_new_cycle_lands(server: ServerThread, live_store: Path) -> None:
    """After a writer commits a new cycle, 'latest' queries move to it within the poll interval."""
    before = httpx.get(server.url + "/health").json()
    ForecastStore.open(live_store).append_cycle(synthetic_forecast("2020-01-01T12", **SMALL), provenance=PROV)
    deadline = time.time() + 5
    while time.time() < deadline:
        after = httpx.get(server.url + "/health").json()
        if after["snapshot"] != before["snapshot"]:
            break
        time.sleep(0.1)
    assert after["latest_init_time"] == "2020-01-01T12:00:00" and after["cycles"] == before["cycles"] + 1
    r = httpx.get(server.url + "/v1/point", params={"variable": "2m_temperature", "lat": 0, "lon": 0})
    assert r.json()["init_time"] == "2020-01-01T12:00:00"


def test_empty_store_is_served_with_503_until_the_first_cycle(tmp_path: Path) -> None:
    """A service started before any cycle answers 503 (not 500), then serves the first cycle."""
    path = tmp_path / "empty.icechunk"
    store = ForecastStore.create(path)
    with ServerThread(create_app(str(path), poll_seconds=0.1)) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/health").status_code == 503
        params = {"variable": "2m_temperature", "lat": 0, "lon": 0}
        r = c.get("/v1/point", params=params)
        assert r.status_code == 503 and "no cycles" in r.json()["detail"]
        store.append_cycle(synthetic_forecast("2020-01-01", **SMALL), provenance=PROV)
        time.sleep(0.3)
        assert c.get("/v1/point", params=params).status_code == 200
