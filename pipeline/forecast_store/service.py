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
* Optional bearer token (``Authorization: Bearer TOKEN``, nothing else) on every ``/v1`` endpoint. Without
  one, only requests whose ``Host`` header names this machine's loopback (or an ``allowed_hosts`` entry) are
  answered, so a web page cannot reach the service through DNS rebinding.
* ``/docs`` is rendered here from the OpenAPI schema (no script or style from a CDN); ``/openapi.json``.
* :func:`serve` runs it with uvicorn and a header-read timeout: a connection that has not sent a complete
  request head within ``header_timeout_s`` is closed (slow or half-open connections cannot pile up).
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


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(
    location: str,
    *,
    token: str | None = None,
    poll_seconds: float = 1.0,
    cache_bytes: int = 1 << 30,
    storage: StorageOptions | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> FastAPI:
    """The FastAPI app serving the store at ``location`` (opened now; UserError if it is not a store).

    Without a ``token``, requests must name a loopback host or one of ``allowed_hosts`` in ``Host``."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    store = ForecastStore.open(location, storage=storage)
    state = StoreState(store, poll_seconds=poll_seconds, cache_bytes=cache_bytes)
    app = FastAPI(
        title="velocast forecast query service",
        version="1",
        description="Read-only queries on a velocast forecast store: point plumes, regional statistics and "
        "threshold probabilities of the ensemble, with units. All times UTC; lead times in hours.",
        docs_url=None, redoc_url=None,
    )
    if token is None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=[*LOOPBACK_HOSTS, *allowed_hosts])
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
        scheme, _, given = (authorization or "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
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

    @app.get("/v1/coastlines", tags=["page"], dependencies=[Depends(auth)])
    def coastlines(request: Request) -> Response:
        """Coastlines crossing the store's domain as a GeoJSON MultiLineString in the domain's longitude
        convention (Natural Earth 1:110m, shipped with velocast); empty for the embedded atmosphere."""
        from pipeline.coastlines import geojson

        reader = state.reader()
        info = reader.describe()
        body = geojson(reader.extent) if info["coastlines"] else {"type": "MultiLineString", "coordinates": []}
        return JSONResponse(body, headers={"Cache-Control": "max-age=86400"})

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

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return Response(docs_html(app.openapi()), media_type="text/html; charset=utf-8")

    return app


def docs_html(schema: dict[str, Any]) -> str:
    """The API reference as one self-contained HTML page (no script, no style sheet from elsewhere)."""
    from html import escape

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(schema['info']['title'])}</title>",
             ("<style>body{font:15px/1.4 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
              "code{background:#f3f3f3;padding:0 .2em}table{border-collapse:collapse;margin:.5em 0 1.5em}"
              "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}</style></head><body>"),
             f"<h1>{escape(schema['info']['title'])}</h1><p>{escape(schema['info'].get('description', ''))}</p>",
             "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>.</p>"]
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            parts.append(f"<h2><code>{escape(method.upper())} {escape(path)}</code></h2>")
            text = operation.get("description") or operation.get("summary") or ""
            parts.append(f"<p>{escape(text)}</p>")
            params = operation.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>type</th><th>required</th><th>description</th></tr>")
                for param in params:
                    kind = param.get("schema", {})
                    shown = kind.get("type") or " | ".join(k.get("type", "") for k in kind.get("anyOf", []))
                    if "enum" in kind:
                        shown += " (" + ", ".join(map(str, kind["enum"])) + ")"
                    parts.append(f"<tr><td><code>{escape(param['name'])}</code></td><td>{escape(str(shown))}</td>"
                                 f"<td>{'yes' if param.get('required') else ''}</td>"
                                 f"<td>{escape(param.get('description', ''))}</td></tr>")
                parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


HEADER_TIMEOUT_S = 10.0


def _timed_protocol(base: type, timeout_s: float) -> type:
    """``base`` (a uvicorn HTTP protocol) that closes a connection whose first request head is not complete
    within ``timeout_s`` (uvicorn itself waits for it forever)."""

    class TimedHeaders(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(timeout_s, self._head_timeout)

        def _head_timeout(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    TimedHeaders.__name__ = f"TimedHeaders{base.__name__}"
    return TimedHeaders


def server_config(app: FastAPI, *, host: str, port: int, header_timeout_s: float = HEADER_TIMEOUT_S,
                  log_level: str = "warning") -> Any:
    """The uvicorn configuration velocast serves with: ``app`` on ``host:port``, the header-read timeout,
    5 s keep-alive, no access log."""
    import uvicorn

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as protocol
    except ImportError:  # httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol as protocol
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          http=_timed_protocol(protocol, header_timeout_s), timeout_keep_alive=5)


def serve(app: FastAPI, *, host: str, port: int, header_timeout_s: float = HEADER_TIMEOUT_S) -> None:
    """Run ``app`` on ``host:port`` (see :func:`server_config`); blocks until interrupted."""
    import uvicorn

    uvicorn.Server(server_config(app, host=host, port=port, header_timeout_s=header_timeout_s)).run()


class _HTTPError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
