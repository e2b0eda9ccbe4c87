"""The service under abuse, over the real server on loopback: concurrent NetCDF requests (libnetcdf is not
thread-safe: it used to segfault), DNS rebinding (a foreign Host without a token), other authorisation schemes,
half-open connections that never finish their headers, the API docs without a CDN, an impossible --host."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fs_helpers import ServerThread

from pipeline.forecast_store.service import create_app

POINT = {"variable": "temperature", "level": 850, "lat": 45, "lon": 7}


def test_concurrent_netcdf_requests_all_answer_and_the_server_lives(small_store: Path) -> None:
    with ServerThread(create_app(str(small_store))) as srv:
        def fetch(i: int) -> tuple[int, bytes]:
            with httpx.Client(base_url=srv.url, timeout=60) as client:
                r = client.get("/v1/point", params={**POINT, "lon": 7 + i % 5, "format": "netcdf"})
                return r.status_code, r.content[:4]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(fetch, range(80)))
        assert all(code == 200 and magic == b"\x89HDF" for code, magic in answers)
        assert httpx.get(srv.url + "/health").status_code == 200


def test_without_a_token_a_foreign_host_is_refused(small_store: Path) -> None:
    with ServerThread(create_app(str(small_store))) as srv:
        assert httpx.get(srv.url + "/v1/info").status_code == 200
        assert httpx.get(srv.url + "/v1/info", headers={"Host": f"localhost:{srv.port}"}).status_code == 200
        evil = httpx.get(srv.url + "/v1/info", headers={"Host": "attacker.example"})
        assert evil.status_code == 400
    with ServerThread(create_app(str(small_store), allowed_hosts=("forecasts.internal",))) as srv:
        assert httpx.get(srv.url + "/v1/info", headers={"Host": "forecasts.internal"}).status_code == 200


def test_only_a_bearer_token_authorises(small_store: Path) -> None:
    with ServerThread(create_app(str(small_store), token="s3cret")) as srv:
        for header in ("s3cret", "Basic s3cret", "Token s3cret", "bearer s3cret", "Bearer wrong"):
            assert httpx.get(srv.url + "/v1/info", headers={"Authorization": header}).status_code == 401, header
        assert httpx.get(srv.url + "/v1/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # with a token, the Host header does not matter (the token is the protection)
        assert httpx.get(srv.url + "/v1/info", headers={"Authorization": "Bearer s3cret",
                                                        "Host": "anything.example"}).status_code == 200


def test_connections_that_never_finish_their_headers_are_closed(small_store: Path) -> None:
    """300 half-open connections (a request line, no end of headers) are all closed by the server within the
    header timeout, while a normal request is still answered."""
    with ServerThread(create_app(str(small_store)), header_timeout_s=1.0) as srv:
        sockets = []
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        assert httpx.get(srv.url + "/health", timeout=10).status_code == 200
        time.sleep(2.5)
        closed = 0
        for sock in sockets:
            sock.settimeout(5)
            try:
                closed += sock.recv(1) == b""
            except OSError:
                closed += 1
            sock.close()
        assert closed == 300


def test_the_api_docs_are_served_without_a_cdn(small_store: Path) -> None:
    with ServerThread(create_app(str(small_store))) as srv:
        page = httpx.get(srv.url + "/docs").text
        assert "/v1/point" in page and "openapi.json" in page
        assert "<script" not in page and "http://" not in page and "https://" not in page


def test_an_impossible_host_is_one_line(small_store: Path) -> None:
    for host in ("no-such-host.invalid", "203.0.113.7"):  # unresolvable; an address of no interface here
        proc = subprocess.run([sys.executable, "-m", "pipeline", "serve", str(small_store), "--host", host,
                               "--port", "8765"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "--host" in proc.stderr or "cannot listen" in proc.stderr, proc.stderr


