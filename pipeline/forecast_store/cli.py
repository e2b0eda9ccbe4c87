"""``velocast query ...`` (point, region, probability, info) and ``velocast serve STORE``."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.root import app, group
from pipeline.errors import UserError

query_app = group("query")

StoreArg = Annotated[str, typer.Argument(help="Forecast store: a local path, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.")]
VariableOpt = Annotated[str, typer.Option("--variable", "-V", help="Variable name, e.g. temperature, 2m_temperature.")]
LevelOpt = Annotated[float | None, typer.Option("--level", "-l", help="Pressure level in hPa (level variables).")]
InitOpt = Annotated[str | None, typer.Option("--init-time", "-i", help="Init time (ISO 8601); default: latest cycle.")]
SnapshotOpt = Annotated[str | None, typer.Option("--snapshot", help="Read as of this snapshot id (default: head).")]
QuantOpt = Annotated[str, typer.Option("--quantiles", "-q", help="Comma-separated quantiles, e.g. 0.1,0.5,0.9.")]
MembersOpt = Annotated[bool, typer.Option("--members/--no-members", help="Include every member's values.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format: json, csv or netcdf.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (required for netcdf) instead of stdout.")]
AnonOpt = Annotated[bool, typer.Option("--anonymous", help="Unsigned requests to object storage (public buckets).")]


def _reader(store: str, snapshot: str | None, anonymous: bool):
    from pipeline.forecast_store.query import SnapshotReader
    from pipeline.forecast_store.store import ForecastStore, StorageOptions

    return SnapshotReader(ForecastStore.open(store, storage=StorageOptions(anonymous=anonymous)), snapshot=snapshot)


def _quantiles(text: str) -> list[float]:
    try:
        return [float(q) for q in text.split(",") if q.strip()]
    except ValueError:
        raise UserError(f"--quantiles must be comma-separated numbers in [0, 1], got {text!r}") from None


def _emit(result, fmt: str, out: Path | None) -> None:
    if fmt not in ("json", "csv", "netcdf"):
        raise UserError(f"--format must be json, csv or netcdf, got {fmt!r}")
    body = result.render(fmt)
    if out is None:
        if fmt == "netcdf":
            raise UserError("--format netcdf needs --out FILE")
        sys.stdout.write(body.decode())
        if not body.endswith(b"\n"):
            sys.stdout.write("\n")
        return
    from pipeline.errors import USER_ERRNOS
    from pipeline.files import write_atomic

    out = out.expanduser()
    if out.is_dir():
        raise UserError("is a directory; give --out a file name (e.g. answer.nc)", path=out)
    try:
        write_atomic(out, body)
    except OSError as exc:
        raise UserError(f"cannot write the answer: {USER_ERRNOS.get(exc.errno or -1, exc.strerror)}", path=out) from None
    from pipeline.console import err_console

    err_console.print(f"wrote {out}", highlight=False)


@query_app.command("point")
def point(
    store: StoreArg,
    variable: VariableOpt,
    lat: Annotated[float, typer.Option("--lat", help="Latitude, degrees north [-90, 90].")],
    lon: Annotated[float, typer.Option("--lon", help="Longitude, degrees east (periodic).")],
    level: LevelOpt = None,
    init_time: InitOpt = None,
    method: Annotated[str, typer.Option("--method", "-m", help="nearest or bilinear.")] = "nearest",
    quantiles: QuantOpt = "",
    members: MembersOpt = False,
    fmt: FormatOpt = "json",
    out: OutOpt = None,
    snapshot: SnapshotOpt = None,
    anonymous: AnonOpt = False,
) -> None:
    """Ensemble plume at a point over all leads: mean, spread (std), quantiles, members."""
    reader = _reader(store, snapshot, anonymous)
    result = reader.point(variable=variable, lat=lat, lon=lon, level=level, init_time=init_time,
                          method=method, quantiles=_quantiles(quantiles), members=members)  # type: ignore[arg-type]
    _emit(result, fmt, out)


@query_app.command("region")
def region(
    store: StoreArg,
    variable: VariableOpt,
    lat_min: Annotated[float, typer.Option("--lat-min", help="Southern edge (degrees north).")],
    lat_max: Annotated[float, typer.Option("--lat-max", help="Northern edge (degrees north).")],
    lon_min: Annotated[float, typer.Option("--lon-min", help="Western edge (degrees east); > --lon-max crosses 0°.")],
    lon_max: Annotated[float, typer.Option("--lon-max", help="Eastern edge (degrees east).")],
    lead: Annotated[str, typer.Option("--lead", help="Lead time: hours (24) or 24h / 1d.")],
    level: LevelOpt = None,
    init_time: InitOpt = None,
    quantiles: QuantOpt = "",
    members: MembersOpt = False,
    fmt: FormatOpt = "json",
    out: OutOpt = None,
    snapshot: SnapshotOpt = None,
    anonymous: AnonOpt = False,
) -> None:
    """Ensemble statistics on a bounding box at one lead."""
    reader = _reader(store, snapshot, anonymous)
    result = reader.region(variable=variable, lat_min=lat_min, lat_max=lat_max, lon_min=lon_min, lon_max=lon_max,
                           lead=lead, level=level, init_time=init_time, quantiles=_quantiles(quantiles),
                           members=members)
    _emit(result, fmt, out)


@query_app.command("probability")
def probability(
    store: StoreArg,
    variable: VariableOpt,
    threshold: Annotated[float, typer.Option("--threshold", "-t", help="Threshold in the variable's units.")],
    below: Annotated[bool, typer.Option("--below/--exceed", help="P(x < t) instead of P(x > t).")] = False,
    lat: Annotated[float | None, typer.Option("--lat", help="Point latitude (point mode).")] = None,
    lon: Annotated[float | None, typer.Option("--lon", help="Point longitude (point mode).")] = None,
    lat_min: Annotated[float | None, typer.Option("--lat-min", help="Box southern edge (region mode).")] = None,
    lat_max: Annotated[float | None, typer.Option("--lat-max", help="Box northern edge (region mode).")] = None,
    lon_min: Annotated[float | None, typer.Option("--lon-min", help="Box western edge (region mode).")] = None,
    lon_max: Annotated[float | None, typer.Option("--lon-max", help="Box eastern edge (region mode).")] = None,
    lead: Annotated[str | None, typer.Option("--lead", help="Lead time (region mode).")] = None,
    level: LevelOpt = None,
    init_time: InitOpt = None,
    method: Annotated[str, typer.Option("--method", "-m", help="nearest or bilinear (point mode).")] = "nearest",
    fmt: FormatOpt = "json",
    out: OutOpt = None,
    snapshot: SnapshotOpt = None,
    anonymous: AnonOpt = False,
) -> None:
    """Probability of exceeding (or undercutting) a threshold: per lead at a point, or as a map on a box."""
    direction = "below" if below else "exceed"
    box = (lat_min, lat_max, lon_min, lon_max)
    reader = _reader(store, snapshot, anonymous)
    if lat is not None and lon is not None and all(b is None for b in box):
        result = reader.point_probability(variable=variable, lat=lat, lon=lon, threshold=threshold,
                                          direction=direction, level=level, init_time=init_time,
                                          method=method)  # type: ignore[arg-type]
    elif all(b is not None for b in box) and lat is None and lon is None:
        if lead is None:
            raise UserError("region mode needs --lead")
        result = reader.region(variable=variable, lat_min=lat_min, lat_max=lat_max, lon_min=lon_min,  # type: ignore[arg-type]
                               lon_max=lon_max, lead=lead, level=level, init_time=init_time,  # type: ignore[arg-type]
                               threshold=threshold, direction=direction, stats=False)
    else:
        raise UserError("give either --lat and --lon (point) or --lat-min --lat-max --lon-min --lon-max (region)")
    _emit(result, fmt, out)


@query_app.command("info")
def info(store: StoreArg, snapshot: SnapshotOpt = None, anonymous: AnonOpt = False) -> None:
    """What the store holds: variables, units, levels, leads, grid, cycles (with snapshots and tags)."""
    import json

    from pipeline.forecast_store.store import ForecastStore, StorageOptions

    fs = ForecastStore.open(store, storage=StorageOptions(anonymous=anonymous))
    reader = _reader(store, snapshot, anonymous)
    doc = reader.describe()
    doc["cycles"] = [{"init_time": str(c.init_time)[:19], "snapshot": c.snapshot_id, "tag": c.tag,
                      "written_at": c.written_at} for c in fs.cycles()]
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


store_app = group("store")


def parse_age(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` or ``0`` → a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    try:
        if value == "0":
            return timedelta(0)
        return timedelta(seconds=float(value[:-1]) * units[value[-1]])
    except (KeyError, ValueError, IndexError):
        raise UserError(f"an age must be a number and a unit (s, m, h, d), e.g. 12h or 7d; got {text!r}") from None


@store_app.command("gc")
def gc(
    store: StoreArg,
    grace: Annotated[str, typer.Option("--grace", help="Keep unreferenced objects younger than this (a writer "
                                       "may still be committing them): e.g. 1d, 6h, 0.")] = "1d",
    expire_older_than: Annotated[str | None, typer.Option(
        "--expire-older-than", help="Also drop untagged history older than this age (tagged cycles stay).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")] = False,
    anonymous: AnonOpt = False,
) -> None:
    """Delete what killed writers left in a store (chunks no commit references) and, optionally, old history."""
    from datetime import UTC, datetime

    from pipeline.forecast_store.store import ForecastStore, StorageOptions

    fs = ForecastStore.open(store, storage=StorageOptions(anonymous=anonymous))
    before = None if expire_older_than is None else datetime.now(UTC) - parse_age(expire_older_than)
    report = fs.collect_garbage(grace=parse_age(grace), expire_before=before, dry_run=dry_run)
    typer.echo(f"{store}: {report.summary()}")


@app.command("serve")
def serve(
    store: StoreArg,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port.")] = 8000,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="File holding the token that /v1 requires as 'Authorization: Bearer TOKEN' (or set "
                             "VELOCAST_TOKEN; never on the command line, where `ps` shows it).")] = None,
    allow_host: Annotated[list[str], typer.Option(
        "--allow-host", help="Without a token, the Host names besides loopback that requests may use (repeatable), "
                             "e.g. the machine's name when --host 0.0.0.0.")] = [],  # noqa: B006 (typer)
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", help="How often to check for a new cycle.")] = 1.0,
    cache_mb: Annotated[int, typer.Option("--cache-mb", help="Decoded-chunk cache size per snapshot (MiB).")] = 1024,
    anonymous: AnonOpt = False,
) -> None:
    """Serve read-only HTTP queries (and the map page at /) on a forecast store."""
    from pipeline.console import err_console
    from pipeline.forecast_store.service import create_app
    from pipeline.forecast_store.service import serve as run_server
    from pipeline.forecast_store.store import StorageOptions

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    check_host(host, port)
    token = read_token(token_file)
    web = create_app(store, token=token, poll_seconds=poll_seconds, cache_bytes=cache_mb << 20,
                     storage=StorageOptions(anonymous=anonymous), allowed_hosts=(host, *allow_host))
    err_console.print(f"serving {store} on http://{host}:{port}/ (docs at /docs)"
                      + ("" if token else "; no token: requests must name this host"), highlight=False)
    run_server(web, host=host, port=port)


def check_host(host: str, port: int) -> None:
    """A UserError unless ``host`` is an address this machine can listen on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r} is not an address or name this machine can resolve ({exc.strerror})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                return
            except OSError as exc:
                reason = exc.strerror
    raise UserError(f"cannot listen on {host}:{port} ({reason}); choose another --host or --port")


def read_token(path: Path | None) -> str | None:
    """The service token: the first line of ``path``, else ``$VELOCAST_TOKEN``, else None (no token)."""
    if path is not None:
        if not path.is_file():
            raise UserError("token file not found", path=path)
        token = path.read_text().strip().splitlines()[0].strip() if path.read_text().strip() else ""
        if not token:
            raise UserError("the token file is empty", path=path)
        return token
    return os.environ.get("VELOCAST_TOKEN") or None
