"""Forecast store contract: atomic cycles with provenance, layout checks, idempotency, snapshots,
tags, concurrent writers. All data is SYNTHETIC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fs_helpers import PROV, SMALL, writer_process

from pipeline.errors import UserError
from pipeline.forecast_store import ChunkSpec, ForecastStore, synthetic_forecast


def test_append_cycle_round_trips_values_dims_units_and_provenance(tmp_path: Path) -> None:
    """A written cycle reads back bit-identical, in schema order, with units and provenance."""
    store = ForecastStore.create(tmp_path / "s")
    ds = synthetic_forecast("2021-03-04T12", **SMALL)
    result = store.append_cycle(ds, message="first", provenance={**PROV, "checkpoint": "abc123"})
    assert result.action == "written" and result.tag == "cycle-20210304T1200"
    back = ForecastStore.open(tmp_path / "s").dataset()
    assert back["temperature"].dims == ("init_time", "lead_time", "member", "level", "latitude", "longitude")
    assert back["2m_temperature"].dims == ("init_time", "lead_time", "member", "latitude", "longitude")
    np.testing.assert_array_equal(back["temperature"].values, ds["temperature"].values)
    assert back["lead_time"].dtype.kind == "m"
    assert back["geopotential"].attrs["units"] == "m**2 s**-2"
    assert back.attrs["provenance"]["checkpoint"] == "abc123"
    assert "code_version" in back.attrs["provenance"]
    head = store.snapshots()[0]
    assert head.id == result.snapshot_id and head.message == "first"
    assert head.metadata["provenance"]["checkpoint"] == "abc123"
    assert store.provenance("2021-03-04T12")["source"] == PROV["source"]


def test_each_cycle_is_one_commit_and_old_snapshots_stay_readable(small_store: Path) -> None:
    """Two cycles → two cycle commits; reading as of the first cycle's snapshot shows one init time."""
    store = ForecastStore.open(small_store)
    cycles = store.cycles()
    assert [str(c.init_time)[:13] for c in cycles] == ["2020-01-01T00", "2020-01-01T06"]
    assert sum(1 for s in store.snapshots() if s.metadata.get("velocast") == "cycle") == 2
    first = store.dataset(snapshot=cycles[0].snapshot_id)
    assert first.sizes["init_time"] == 1
    by_tag = store.dataset(tag=cycles[1].tag)
    assert by_tag.sizes["init_time"] == 2
    assert store.dataset(init_time="2020-01-01T06")["temperature"].dims[0] == "lead_time"


def test_same_init_time_twice_is_skipped_or_replaced_never_duplicated(tmp_path: Path) -> None:
    """Re-writing an init time: 'skip' changes nothing; 'replace' rewrites values in one commit."""
    store = ForecastStore.create(tmp_path / "s")
    store.append_cycle(synthetic_forecast("2020-01-01", **SMALL), provenance=PROV)
    head = store.head()
    again = store.append_cycle(synthetic_forecast("2020-01-01", **SMALL), provenance=PROV)
    assert again.action == "skipped" and store.head() == head
    other = synthetic_forecast("2020-01-01", seed=7, **SMALL)
    replaced = store.append_cycle(other, provenance=PROV, on_exists="replace")
    assert replaced.action == "replaced" and replaced.tag == "cycle-20200101T0000-v2"
    ds = store.dataset()
    assert ds.sizes["init_time"] == 1
    np.testing.assert_array_equal(ds["temperature"].values, other["temperature"].values)
    assert ds.attrs["velocast_store"] == "velocast-forecast"
    with pytest.raises(UserError, match="already in the store"):
        store.append_cycle(other, provenance=PROV, on_exists="error")


def test_first_cycle_defines_the_layout(tmp_path: Path) -> None:
    """A later cycle with other members, variables or grid is refused with a UserError."""
    store = ForecastStore.create(tmp_path / "s")
    store.append_cycle(synthetic_forecast("2020-01-01", **SMALL), provenance=PROV)
    with pytest.raises(UserError, match="member"):
        store.append_cycle(synthetic_forecast("2020-01-02", **{**SMALL, "members": 3}), provenance=PROV)
    with pytest.raises(UserError, match="variables"):
        store.append_cycle(synthetic_forecast("2020-01-02", variables=("temperature",), **SMALL), provenance=PROV)
    assert store.dataset().sizes["init_time"] == 1


def test_missing_provenance_or_bad_input_is_refused(tmp_path: Path) -> None:
    """Provenance keys are required; non-schema input gives a clear UserError; bad paths too."""
    store = ForecastStore.create(tmp_path / "s")
    ds = synthetic_forecast("2020-01-01", **SMALL)
    with pytest.raises(ValueError, match="checkpoint"):
        store.append_cycle(ds, provenance={"source": "x", "config": {}, "data_snapshot": None})
    with pytest.raises(UserError, match="lead_time"):
        store.append_cycle(ds.rename(lead_time="step"), provenance=PROV)
    with pytest.raises(UserError, match="no forecast store"):
        ForecastStore.open(tmp_path / "absent")
    with pytest.raises(UserError, match="not empty"):
        ForecastStore.create(tmp_path / "s")
    with pytest.raises(UserError, match="no cycles"):
        store.dataset()


def test_chunks_follow_the_chunk_spec(tmp_path: Path) -> None:
    """Data variables are chunked: 1 init × all leads × all members × 1 level × the spatial tile."""
    store = ForecastStore.create(tmp_path / "s", chunks=ChunkSpec(tile_lat=4, tile_lon=8))
    store.append_cycle(synthetic_forecast("2020-01-01", **SMALL), provenance=PROV)
    ds = store.dataset()
    assert ds["temperature"].encoding["chunks"] == (1, 4, 5, 1, 4, 8)
    assert ds["2m_temperature"].encoding["chunks"] == (1, 4, 5, 4, 8)


def test_concurrent_writers_of_different_cycles_all_succeed(tmp_path: Path) -> None:
    """Three processes commit three cycles at the same moment: all three land, once each."""
    path = tmp_path / "s"
    store = ForecastStore.create(path)
    go = tmp_path / "go"
    inits = ["2020-01-01T00", "2020-01-01T06", "2020-01-01T12"]
    procs = [writer_process(path, init, go=go) for init in inits]
    for proc in procs:  # every writer has its data ready before any starts writing
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    go.touch()
    outs = [p.communicate(timeout=90) for p in procs]
    tries = []
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-2000:]
        assert "written" in out
        tries.append(int(out.split()[-1]))
    assert max(tries) > 1, f"no writer had to retry ({tries}): the race was not exercised"
    got = sorted(str(t)[:13] for t in store.init_times())
    assert got == inits
    assert len([c for c in store.cycles()]) == 3


def test_side_table_is_written_in_one_commit_and_read_back(tmp_path: Path) -> None:
    """write_table stores a Dataset under tables/<name> with provenance; rewriting replaces it."""
    import xarray as xr

    store = ForecastStore.create(tmp_path / "s")
    store.append_cycle(synthetic_forecast("2020-01-01", **SMALL), provenance=PROV)
    scores = xr.Dataset({"crps": (("lead_time",), np.array([1.0, 2.0]), {"units": "K"})},
                        coords={"lead_time": np.array([6, 12]) * np.timedelta64(1, "h")})
    sid = store.write_table("verification", scores, message="verify", provenance=PROV)
    assert store.head() == sid and store.snapshots()[0].metadata["table"] == "verification"
    back = store.table("verification")
    np.testing.assert_array_equal(back["crps"].values, [1.0, 2.0])
    assert back.attrs["provenance"]["source"] == PROV["source"]
    store.write_table("verification", scores * 2, message="verify again", provenance=PROV)
    np.testing.assert_array_equal(store.table("verification")["crps"].values, [2.0, 4.0])
    assert store.dataset().sizes["init_time"] == 1
    with pytest.raises(UserError, match="no table"):
        store.table("absent")


def test_object_storage_urls_map_to_icechunk_storage_fake_bucket_no_network() -> None:
    """s3:// and gs:// URLs (a fake bucket name; nothing is contacted) build object-store storage;
    unknown schemes and bucket-less URLs are UserErrors."""
    from pipeline.forecast_store.store import StorageOptions, make_storage

    s3, local = make_storage("s3://velocast-fake-bucket/forecasts/run1", options=StorageOptions(anonymous=True))
    assert local is None and "velocast-fake-bucket" in repr(s3)
    gs, local = make_storage("gs://velocast-fake-bucket/forecasts", options=StorageOptions(anonymous=True))
    assert local is None and gs is not None
    with pytest.raises(UserError, match="unsupported"):
        make_storage("ftp://host/x")
    with pytest.raises(UserError, match="no bucket"):
        make_storage("s3:///prefix")
    _, path = make_storage("file:///tmp/somewhere")
    assert path == Path("/tmp/somewhere")
