"""The read-only HTTP query service over one forecast store (FastAPI).

* Queries mirror :class:`~pipeline.forecast_store.query.SnapshotReader`: ``/v1/point``, ``/v1/region``,
  ``/v1/probability``, ``/v1/grid`` (the web page's map), ``/v1/info``, ``/v1/cycles``; ``/health``;
  OpenAPI docs at ``/docs``; the page at ``/``.
* Bad input (out-of-range coordinates, unknown variables, bad times) → 422 with a one-line ``detail``.
  Clients never pass paths: the store is fixed when the app is built.
* The branch head is polled at most every ``poll_seconds``; when it moves, a new reader (with its own
  chunk cache) replaces the old one, so requests always see one complete snapshot.
* Every data response has ``ETag: "<snapshot id>"``, ``X-Snapshot-Id`` and ``Cache-Control``
  (``no-cache`` for "latest" queries, ``public, max-age=300`` when ``init_time`` is given);
  ``If-None-Match`` with the current snapshot → 304 without computing.
* Optional bearer token (``Authorization: Bearer TOKEN``) on every ``/v1`` endpoint.
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import logging
import threading
import time
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from pipeline.errors import UserError
from pipeline.forecast_store.query import EmptyStoreError, QueryError, QueryResult, SnapshotReader
from pipeline.forecast_store.store import ForecastStore, StorageOptions

log = logging.getLogger(__name__)

MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8", "netcdf": "application/x-netcdf"}
Format = Literal["json", "csv", "netcdf"]


Variable = Annotated[str, Query(max_length=100, description="Variable name (WeatherBench2), e.g. temperature")]
Level = Annotated[float | None, Query(description="Pressure level in hPa (level variables only)")]
InitTime = Annotated[str | None, Query(max_length=40, description="Init time, ISO 8601 (default: latest)")]
Quantiles = Annotated[str | None, Query(max_length=200, description="Comma-separated quantiles, e.g. 0.1,0.5,0.9")]
Lead = Annotated[str, Query(max_length=20, description="Lead time: hours (24) or 24h / 1d")]
Fmt = Annotated[Format, Query(description="Output format")]


def _param(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


POINT_OPENAPI: dict[str, Any] = {"parameters": [
    _param("variable", {"type": "string", "maxLength": 100}, "Variable name (WeatherBench2), e.g. temperature",
           required=True),
    _param("lat", {"type": "number", "minimum": -90, "maximum": 90}, "Latitude in degrees north", required=True),
    _param("lon", {"type": "number", "minimum": -360, "maximum": 360}, "Longitude in degrees east (periodic)",
           required=True),
    _param("level", {"type": "number"}, "Pressure level in hPa (level variables only)"),
    _param("init_time", {"type": "string", "maxLength": 40}, "Init time, ISO 8601 (default: latest)"),
    _param("method", {"type": "string", "enum": ["nearest", "bilinear"], "default": "nearest"}, "Interpolation"),
    _param("quantiles", {"type": "string", "maxLength": 200}, "Comma-separated quantiles, e.g. 0.1,0.5,0.9"),
    _param("members", {"type": "boolean", "default": False}, "Include every member's values"),
    _param("format", {"type": "string", "enum": ["json", "csv", "netcdf"], "default": "json"}, "Output format"),
]}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _point_args(params: Any) -> dict[str, Any]:
    """Validated keyword arguments of :meth:`SnapshotReader.point` (plus ``format``) from a query string."""

    def text(name: str, *, required: bool = False, limit: int = 100) -> str | None:
        value = params.get(name)
        if value is None:
            if required:
                raise QueryError(f"{name}: field required", param=name)
            return None
        if len(value) > limit:
            raise QueryError(f"{name}: at most {limit} characters", param=name)
        return value

    def number(name: str, *, required: bool = False) -> float | None:
        value = text(name, required=required, limit=40)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            raise QueryError(f"{name}: must be a number, got {value!r}", param=name) from None

    def choice(name: str, options: tuple[str, ...]) -> str:
        value = text(name, limit=20) or options[0]
        if value not in options:
            raise QueryError(f"{name}: must be one of {', '.join(options)}, got {value!r}", param=name)
        return value

    members = (text("members", limit=10) or "false").lower()
    if members not in _TRUE | _FALSE:
        raise QueryError(f"members: must be true or false, got {members!r}", param="members")
    return {
        "variable": text("variable", required=True), "lat": number("lat", required=True),
        "lon": number("lon", required=True), "level": number("level"),
        "init_time": text("init_time", limit=40), "method": choice("method", ("nearest", "bilinear")),
        "quantiles": _split_quantiles(text("quantiles", limit=200)), "members": members in _TRUE,
        "format": choice("format", ("json", "csv", "netcdf")),
    }


class StoreState:
    """The opened store and the reader for its current head, refreshed at most every ``poll_seconds``."""

    def __init__(self, store: ForecastStore, *, poll_seconds: float, cache_bytes: int) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.cache_bytes = cache_bytes
        self._lock = threading.Lock()
        self._checked = 0.0
        self._reader: SnapshotReader | None = None
        self._cycles: tuple[str, list[dict[str, Any]]] | None = None

    def fresh_reader(self) -> SnapshotReader | None:
        """The current reader if the head was checked within ``poll_seconds`` (no I/O), else None."""
        reader = self._reader
        if reader is not None and time.monotonic() - self._checked < self.poll_seconds:
            return reader
        return None

    def reader(self) -> SnapshotReader:
        now = time.monotonic()
        reader = self._reader
        if reader is not None and now - self._checked < self.poll_seconds:
            return reader
        with self._lock:
            reader = self._reader
            if reader is not None and time.monotonic() - self._checked < self.poll_seconds:
                return reader
            try:
                head = self.store.head()
            except Exception:  # storage hiccup: keep serving the snapshot we have
                if reader is None:
                    raise
                log.warning("could not read the branch head of %s; serving snapshot %s",
                            self.store.location, reader.snapshot_id, exc_info=True)
                self._checked = time.monotonic()
                return reader
            if reader is None or reader.snapshot_id != head:
                reader = SnapshotReader(self.store, snapshot=head, cache_bytes=self.cache_bytes)
                self._reader = reader
            self._checked = time.monotonic()
            return reader

    def cycles(self, reader: SnapshotReader) -> list[dict[str, Any]]:
        cached = self._cycles
        if cached is not None and cached[0] == reader.snapshot_id:
            return cached[1]
        rows = [
            {"init_time": str(c.init_time)[:19], "snapshot": c.snapshot_id, "written_at": c.written_at,
             "message": c.message, "tag": c.tag}
            for c in self.store.cycles()
        ]
        self._cycles = (reader.snapshot_id, rows)
        return rows


def _split_quantiles(text: str | None) -> list[float]:
    if not text:
        return []
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > 20:
        raise QueryError("at most 20 quantiles", param="quantiles")
    out = []
    for p in parts:
        try:
            out.append(float(p))
        except ValueError:
            raise QueryError(f"quantiles must be numbers in [0, 1], got {p!r}", param="quantiles") from None
    return out


def create_app(
    location: str,
    *,
    token: str | None = None,
    poll_seconds: float = 1.0,
    cache_bytes: int = 1 << 30,
    storage: StorageOptions | None = None,
) -> FastAPI:
    """The FastAPI app serving the store at ``location`` (opened now; UserError if it is not a store)."""
    store = ForecastStore.open(location, storage=storage)
    state = StoreState(store, poll_seconds=poll_seconds, cache_bytes=cache_bytes)
    app = FastAPI(
        title="velocast forecast query service",
        version="1",
        description="Read-only queries on a velocast forecast store: point plumes, regional statistics and "
        "threshold probabilities of the ensemble, with units. All times UTC; lead times in hours.",
    )
    app.state.forecast = state
    with contextlib.suppress(EmptyStoreError):  # serve an empty store too: 503 until a cycle lands
        state.reader()  # open the head now, so the first request does not pay for it
    # Move everything allocated so far (libraries, the opened store) out of the collector's reach:
    # full collections then scan only per-request garbage, which keeps latency tails short.
    gc.collect()
    gc.freeze()

    async def auth(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:
        if token is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _HTTPError(401, "missing or wrong bearer token (send 'Authorization: Bearer TOKEN')")

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "param": exc.param}, status_code=422)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(_HTTPError)
    async def _http_error(request: Request, exc: _HTTPError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "header"))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    def respond(request: Request, reader: SnapshotReader, build: Any, fmt: str, name: str,
                pinned: bool) -> Response:
        etag = f'"{reader.snapshot_id}"'
        headers = {
            "ETag": etag,
            "X-Snapshot-Id": reader.snapshot_id,
            "Cache-Control": "public, max-age=300" if pinned else "no-cache",
        }
        wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")}
        if etag in wanted or "*" in wanted:
            return Response(status_code=304, headers=headers)
        result: QueryResult | bytes = build()
        body = result if isinstance(result, bytes) else result.render(fmt)  # type: ignore[arg-type]
        if fmt == "netcdf":
            headers["Content-Disposition"] = f'attachment; filename="{name}.nc"'
        return Response(content=body, media_type=MEDIA[fmt], headers=headers)

    @app.get("/health", tags=["service"])
    def health() -> Any:
        """Liveness and the snapshot being served (no token needed); 503 while the store is empty."""
        try:
            reader = state.reader()
        except EmptyStoreError as exc:
            return JSONResponse({"status": "empty", "detail": str(exc)}, status_code=503)
        return {"status": "ok", "snapshot": reader.snapshot_id,
                "latest_init_time": str(reader.init_times.max())[:19], "cycles": len(reader.init_times)}

    @app.get("/v1/info", tags=["queries"], dependencies=[Depends(auth)])
    def info(request: Request) -> Response:
        """Variables (with units and levels), init times, leads, members and grid of the current snapshot."""
        reader = state.reader()
        import orjson

        return respond(request, reader, lambda: orjson.dumps(reader.describe()), "json", "info", False)

    @app.get("/v1/cycles", tags=["queries"], dependencies=[Depends(auth)])
    def cycles(request: Request) -> Response:
        """The cycles in the store with the commit (snapshot, tag) that wrote each."""
        reader = state.reader()
        import orjson

        return respond(request, reader, lambda: orjson.dumps(state.cycles(reader)), "json", "cycles", False)

    @app.get("/v1/point", tags=["queries"], openapi_extra=POINT_OPENAPI)
    async def point(request: Request) -> Response:
        """Plume at a point over all leads: ensemble mean, spread (std, ddof=1), quantiles, members.

        Parameters are parsed by hand (documented in the OpenAPI schema): FastAPI's per-parameter
        validation costs more than the query itself on this hot path."""
        # The fast path runs on the event loop (cached chunks: well under a millisecond); re-opening
        # a new snapshot and NetCDF encoding go to the thread pool.
        await auth(request.headers.get("authorization"))
        args = _point_args(request.query_params)
        reader = state.fresh_reader() or await run_in_threadpool(state.reader)
        fmt = args.pop("format")

        def answer() -> Response:
            return respond(request, reader, lambda: reader.point(**args), fmt, "point",
                           args["init_time"] is not None)

        return answer() if fmt != "netcdf" else await run_in_threadpool(answer)

    @app.get("/v1/region", tags=["queries"], dependencies=[Depends(auth)])
    def region(
        request: Request,
        variable: Variable,
        lat_min: Annotated[float, Query(description="Southern edge, degrees north")],
        lat_max: Annotated[float, Query(description="Northern edge, degrees north")],
        lon_min: Annotated[float, Query(description="Western edge, degrees east (lon_min > lon_max crosses 0°)")],
        lon_max: Annotated[float, Query(description="Eastern edge, degrees east")],
        lead: Lead,
        level: Level = None,
        init_time: InitTime = None,
        quantiles: Quantiles = None,
        members: Annotated[bool, Query(description="Include every member's values")] = False,
        format: Fmt = "json",
    ) -> Response:
        """Ensemble statistics on a bounding box at one lead."""
        reader = state.reader()
        qs = _split_quantiles(quantiles)
        return respond(request, reader, lambda: reader.region(
            variable=variable, lat_min=lat_min, lat_max=lat_max, lon_min=lon_min, lon_max=lon_max, lead=lead,
            level=level, init_time=init_time, quantiles=qs, members=members), format, "region",
            init_time is not None)

    @app.get("/v1/probability", tags=["queries"], dependencies=[Depends(auth)])
    def probability(
        request: Request,
        variable: Variable,
        threshold: Annotated[float, Query(description="Threshold in the variable's units")],
        direction: Annotated[Literal["exceed", "below"], Query(description="P(x > t) or P(x < t)")] = "exceed",
        lat: Annotated[float | None, Query(description="Point latitude (point mode)")] = None,
        lon: Annotated[float | None, Query(description="Point longitude (point mode)")] = None,
        lat_min: Annotated[float | None, Query(description="Box (region mode)")] = None,
        lat_max: Annotated[float | None, Query(description="Box (region mode)")] = None,
        lon_min: Annotated[float | None, Query(description="Box (region mode)")] = None,
        lon_max: Annotated[float | None, Query(description="Box (region mode)")] = None,
        lead: Annotated[str | None, Query(max_length=20, description="Lead (region mode)")] = None,
        level: Level = None,
        init_time: InitTime = None,
        method: Annotated[Literal["nearest", "bilinear"], Query(description="Interpolation (point)")] = "nearest",
        format: Fmt = "json",
    ) -> Response:
        """Probability of exceeding/undercutting a threshold: per lead at a point (lat, lon), or as a map
        on a box at one lead (lat_min, lat_max, lon_min, lon_max, lead) with its area mean."""
        reader = state.reader()
        box = (lat_min, lat_max, lon_min, lon_max)
        if lat is not None and lon is not None and all(b is None for b in box):
            build = lambda: reader.point_probability(
                variable=variable, lat=lat, lon=lon, threshold=threshold, direction=direction, level=level,
                init_time=init_time, method=method)
        elif all(b is not None for b in box) and lat is None and lon is None:
            if lead is None:
                raise QueryError("region probability needs lead", param="lead")
            build = lambda: reader.region(
                variable=variable, lat_min=lat_min, lat_max=lat_max, lon_min=lon_min, lon_max=lon_max,
                lead=lead, level=level, init_time=init_time, threshold=threshold, direction=direction,
                stats=False)
        else:
            raise QueryError("give either lat and lon (point) or lat_min, lat_max, lon_min, lon_max (region)",
                             param="lat")
        return respond(request, reader, build, format, "probability", init_time is not None)

    @app.get("/v1/grid", tags=["page"], dependencies=[Depends(auth)])
    def grid(
        request: Request,
        variable: Variable,
        lead: Lead,
        level: Level = None,
        init_time: InitTime = None,
        stat: Annotated[Literal["mean", "spread"], Query(description="Which statistic")] = "mean",
    ) -> Response:
        """The global map of the ensemble mean or spread at one lead (JSON; rows south → north)."""
        reader = state.reader()
        import orjson

        return respond(request, reader, lambda: orjson.dumps(
            reader.grid(variable=variable, lead=lead, level=level, init_time=init_time, stat=stat),
            option=orjson.OPT_SERIALIZE_NUMPY), "json", "grid", init_time is not None)

    page = resources.files("pipeline.forecast_store") / "page"
    static = {name: (page / name).read_bytes() for name in ("index.html", "page.js", "page.css")}

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(static["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/page.js", include_in_schema=False)
    def page_js() -> Response:
        return Response(static["page.js"], media_type="text/javascript; charset=utf-8")

    @app.get("/page.css", include_in_schema=False)
    def page_css() -> Response:
        return Response(static["page.css"], media_type="text/css; charset=utf-8")

    return app


class _HTTPError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
