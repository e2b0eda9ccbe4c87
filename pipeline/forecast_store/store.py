"""Forecast stores: Icechunk repositories holding ensemble forecast cycles in the WeatherBench2 schema.

Contract
--------
* A store is an Icechunk repository (local path, ``s3://bucket/prefix`` or ``gs://bucket/prefix``).
  Its ``main`` branch holds one Zarr v3 Dataset (see :mod:`pipeline.forecast_store.schema`).
* :meth:`ForecastStore.append_cycle` writes one init time (all members, leads and variables) as ONE
  commit whose metadata carries the provenance; the first cycle defines the layout, later cycles are
  appended along ``init_time`` (in commit order). Each cycle is tagged ``cycle-YYYYMMDDTHHMM``.
* Concurrent writers: a commit that loses the race is rebased; if the rebase conflicts (both writers
  appended along ``init_time``) the cycle is rewritten on top of the new head, up to ``max_tries``.
  On a local filesystem Icechunk cannot make the branch update atomic across processes, so commits
  are serialised with an advisory ``flock`` on ``<store>/velocast-commit.lock``.
* Writing an init time that is already in the store is idempotent: ``on_exists="skip"`` (default)
  leaves the store unchanged and reports ``action="skipped"``; ``"replace"`` overwrites that cycle's
  values in one atomic commit; ``"error"`` raises.
* Readers open a read-only session on a snapshot, so they see the last complete commit, never a
  cycle being written. A writer killed mid-write leaves only unreferenced chunks behind;
  :meth:`ForecastStore.collect_garbage` (``velocast store gc``) deletes those older than a grace period.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipeline.errors import UserError
from pipeline.forecast_store.schema import (
    SCHEMA_VERSION,
    STORE_KIND,
    ChunkSpec,
    check_same_layout,
    normalise_cycle,
    parse_instant,
    with_valid_time,
)
from pipeline.geo import GridExtent

if TYPE_CHECKING:
    import icechunk
    import xarray as xr

log = logging.getLogger(__name__)

BRANCH = "main"
LOCK_NAME = "velocast-commit.lock"
REQUIRED_PROVENANCE: tuple[str, ...] = ("source", "config", "checkpoint", "data_snapshot")
OnExists = Literal["skip", "replace", "error"]


def _quiet_icechunk() -> None:
    """Silence Icechunk's per-open warning about local storage (we lock commits ourselves)."""
    import icechunk

    if "ICECHUNK_LOG" not in os.environ:
        icechunk.set_logs_filter("error")


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """How to reach object storage. ``anonymous`` for public buckets; otherwise credentials come from
    the environment (AWS_* / GOOGLE_APPLICATION_CREDENTIALS) or the explicit fields."""

    anonymous: bool = False
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    service_account_file: str | None = None


def make_storage(location: str | Path, *, options: StorageOptions | None = None) -> tuple[icechunk.Storage, Path | None]:
    """An Icechunk ``Storage`` for ``location`` and, for local stores, the local path."""
    import icechunk

    options = options or StorageOptions()
    text = str(location)
    if text.startswith(("s3://", "gs://", "gcs://")):
        scheme, rest = text.split("://", 1)
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UserError(f"{text}: object-storage URL has no bucket (expected {scheme}://BUCKET/PREFIX)")
        if scheme == "s3":
            explicit = options.access_key_id is not None
            storage = icechunk.s3_storage(
                bucket=bucket, prefix=prefix or None, region=options.region,
                endpoint_url=options.endpoint_url, allow_http=bool(options.endpoint_url
                                                                   and options.endpoint_url.startswith("http://")),
                access_key_id=options.access_key_id, secret_access_key=options.secret_access_key,
                anonymous=options.anonymous or None,
                from_env=None if (options.anonymous or explicit) else True,
            )
        else:
            storage = icechunk.gcs_storage(
                bucket=bucket, prefix=prefix or None, anonymous=options.anonymous or None,
                service_account_file=options.service_account_file,
                from_env=None if (options.anonymous or options.service_account_file) else True,
            )
        return storage, None
    if "://" in text and not text.startswith("file://"):
        raise UserError(f"{text}: unsupported store URL (use a local path, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX)")
    path = Path(text.removeprefix("file://")).expanduser().resolve()
    if path.is_file():
        raise UserError(f"{path}: is a file, not a forecast store (an Icechunk repository is a directory)")
    return icechunk.local_filesystem_storage(str(path)), path


@dataclass(frozen=True, kw_only=True)
class CycleResult:
    """What :meth:`ForecastStore.append_cycle` did: ``written``, ``replaced`` or ``skipped``."""

    init_time: np.datetime64
    action: Literal["written", "replaced", "skipped"]
    snapshot_id: str
    tag: str | None
    tries: int


@dataclass(frozen=True, kw_only=True)
class SnapshotRecord:
    """One commit on the branch (newest first in :meth:`ForecastStore.snapshots`)."""

    id: str
    written_at: str
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CycleInfo:
    """A cycle present at the head: its init time and the commit (and tag) that last wrote it."""

    init_time: np.datetime64
    snapshot_id: str
    written_at: str
    message: str
    tag: str | None


def cycle_tag(init_time: np.datetime64) -> str:
    """The tag name of a cycle: ``cycle-YYYYMMDDTHHMM``."""
    text = str(np.datetime64(init_time, "m"))  # 2020-01-01T00:00
    return "cycle-" + text.replace("-", "").replace(":", "")


def iso(init_time: np.datetime64) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` for a datetime64 (no zone; times are UTC)."""
    return str(np.datetime64(init_time, "s"))


class ForecastStore:
    """A forecast store (Icechunk repository). Build with :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, repo: icechunk.Repository, *, location: str, local_path: Path | None) -> None:
        self.repo = repo
        self.location = location
        self.local_path = local_path

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        location: str | Path,
        *,
        chunks: ChunkSpec | None = None,
        title: str = "velocast ensemble forecasts",
        storage: StorageOptions | None = None,
    ) -> ForecastStore:
        """Create an empty store at ``location`` (error if something is there). ``chunks`` fixes the layout
        the first cycle will be written with."""
        import icechunk
        import zarr

        _quiet_icechunk()
        st, path = make_storage(location, options=storage)
        if path is not None and path.exists() and any(path.iterdir()):
            raise UserError(f"{path}: already exists and is not empty; open it or choose another path")
        if path is None and icechunk.Repository.exists(st):
            raise UserError(f"{location}: a repository already exists there")
        if path is not None:
            from pipeline.files import check_writable

            check_writable(path)
        with store_errors(location, "create the store"):
            repo = icechunk.Repository.create(st)
        from pipeline.provenance import provenance_record

        session = repo.writable_session(BRANCH)
        root = zarr.open_group(session.store, mode="w", zarr_format=3)
        root.attrs.update({
            "velocast_store": STORE_KIND,
            "schema_version": SCHEMA_VERSION,
            "title": title,
            "chunking": (chunks or ChunkSpec()).to_attrs(),
            "created_by": provenance_record(),
        })
        session.commit("create forecast store", metadata={"velocast": "create"})
        return cls(repo, location=str(location), local_path=path)

    @classmethod
    def open(cls, location: str | Path, *, storage: StorageOptions | None = None) -> ForecastStore:
        """Open an existing store; UserError if there is none or it is not a velocast forecast store."""
        import icechunk

        _quiet_icechunk()
        st, path = make_storage(location, options=storage)
        if path is not None and not path.exists():
            raise UserError(f"{path}: no forecast store there (create one with ForecastStore.create)")
        if path is not None and (path / "snapshots").is_dir():
            if not any((path / "refs").glob("*")):
                raise UserError(f"{path}: a damaged Icechunk repository: its branch references (refs/) are gone; "
                                "restore the store from a copy")
            if not (path / "refs" / f"branch.{BRANCH}").is_dir():
                tags = sorted(ref.name.removeprefix("tag.") for ref in (path / "refs").glob("tag.*"))
                hint = f"; its tags survive (newest {tags[-1]}): restore the branch from a copy" if tags else \
                    "; restore the store from a copy"
                raise UserError(f"{path}: a damaged Icechunk repository: its '{BRANCH}' branch reference "
                                f"(refs/branch.{BRANCH}) is gone{hint}")
        try:
            with store_errors(location, "open the store"):
                repo = icechunk.Repository.open(st)
        except UserError as exc:
            raise UserError(f"{location}: not an Icechunk repository ({str(exc).partition('open the store: ')[2]})") \
                from None
        store = cls(repo, location=str(location), local_path=path)
        with store_errors(location, "read the store"):
            attrs = store._root_attrs()
        if attrs.get("velocast_store") != STORE_KIND:
            raise UserError(f"{location}: an Icechunk repository but not a velocast forecast store")
        return store

    @classmethod
    def open_or_create(cls, location: str | Path, *, chunks: ChunkSpec | None = None,
                       storage: StorageOptions | None = None) -> ForecastStore:
        """Open the store at ``location``, creating it (with ``chunks``) if absent."""
        import icechunk

        _quiet_icechunk()
        st, path = make_storage(location, options=storage)
        exists = (path.exists() and any(path.iterdir())) if path is not None else icechunk.Repository.exists(st)
        if exists:
            return cls.open(location, storage=storage)
        return cls.create(location, chunks=chunks, storage=storage)

    # ------------------------------------------------------------------ reading
    def head(self) -> str:
        """The snapshot id at the tip of the branch (cheap: one small object read)."""
        return self.repo.lookup_branch(BRANCH)

    def session(self, *, snapshot: str | None = None, tag: str | None = None) -> icechunk.Session:
        """A read-only session at ``snapshot``, ``tag`` or (default) the branch head."""
        import icechunk

        try:
            if snapshot is not None:
                return self.repo.readonly_session(snapshot_id=snapshot)
            if tag is not None:
                return self.repo.readonly_session(tag=tag)
            return self.repo.readonly_session(branch=BRANCH)
        except (icechunk.IcechunkError, ValueError) as exc:
            what = f"snapshot '{snapshot}'" if snapshot is not None else f"tag '{tag}'"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(f"{self.location}: no {what} in this store ({first})") from None

    def _root_attrs(self, session: icechunk.Session | None = None) -> dict[str, Any]:
        import zarr

        session = session or self.session()
        return dict(zarr.open_group(session.store, mode="r", zarr_format=3).attrs)

    def attrs(self, *, snapshot: str | None = None) -> dict[str, Any]:
        """The store's root attributes (kind, schema version, chunking, latest provenance)."""
        return self._root_attrs(self.session(snapshot=snapshot))

    @staticmethod
    def _has_cycles(session: icechunk.Session) -> bool:
        import zarr

        return "init_time" in zarr.open_group(session.store, mode="r", zarr_format=3)

    def dataset(self, *, snapshot: str | None = None, tag: str | None = None,
                init_time: str | np.datetime64 | None = None) -> xr.Dataset:
        """The forecasts as a lazy Dataset, as of ``snapshot``/``tag`` (default: head); with
        ``init_time``, only that cycle (UserError if absent)."""
        session = self.session(snapshot=snapshot, tag=tag)
        if not self._has_cycles(session):
            raise UserError(f"{self.location}: the store has no cycles yet")
        ds = with_valid_time(_open_dataset(session))
        if init_time is not None:
            want = _parse_time(init_time)
            hits = np.nonzero(ds["init_time"].values == want)[0]
            if len(hits) == 0:
                raise UserError(f"{self.location}: no cycle with init_time {iso(want)} "
                                f"(cycles: {', '.join(iso(t) for t in ds['init_time'].values[-5:])})")
            ds = ds.isel(init_time=int(hits[-1]))
        return ds

    def init_times(self, *, snapshot: str | None = None) -> list[np.datetime64]:
        """The init times in the store (commit order)."""
        session = self.session(snapshot=snapshot)
        if not self._has_cycles(session):
            return []
        return list(_open_dataset(session)["init_time"].values)

    def snapshots(self) -> list[SnapshotRecord]:
        """Every commit on the branch, newest first."""
        return [
            SnapshotRecord(id=info.id, written_at=info.written_at.isoformat(), message=info.message,
                           metadata=dict(info.metadata or {}))
            for info in self.repo.ancestry(branch=BRANCH)
        ]

    def tags(self) -> dict[str, str]:
        """Tag name → snapshot id."""
        return {name: self.repo.lookup_tag(name) for name in sorted(self.repo.list_tags())}

    def cycles(self) -> list[CycleInfo]:
        """The cycles at the head, sorted by init time, each with the commit that last wrote it."""
        present = {np.datetime64(t, "ns") for t in self.init_times()}
        by_snapshot_tag = {sid: name for name, sid in self.tags().items() if name.startswith("cycle-")}
        found: dict[np.datetime64, CycleInfo] = {}
        for rec in self.snapshots():
            if rec.metadata.get("velocast") != "cycle":
                continue
            t = np.datetime64(rec.metadata["init_time"], "ns")
            if t in present and t not in found:
                found[t] = CycleInfo(init_time=t, snapshot_id=rec.id, written_at=rec.written_at,
                                     message=rec.message, tag=by_snapshot_tag.get(rec.id))
        return [found[t] for t in sorted(found)]

    def provenance(self, init_time: str | np.datetime64) -> dict[str, Any]:
        """The provenance record committed with the cycle ``init_time``."""
        want = _parse_time(init_time)
        for rec in self.snapshots():
            if rec.metadata.get("velocast") == "cycle" and np.datetime64(rec.metadata["init_time"], "ns") == want:
                return dict(rec.metadata.get("provenance", {}))
        raise UserError(f"{self.location}: no cycle with init_time {iso(want)}")

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _commit_lock(self) -> Iterator[None]:
        """Serialise commits on a local filesystem (no-op for object storage, which is atomic)."""
        if self.local_path is None:
            yield
            return
        with open(self.local_path / LOCK_NAME, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _commit(self, session: icechunk.Session, message: str, metadata: dict[str, Any]) -> str | None:
        """Commit, rebasing over non-conflicting commits; None if a conflicting commit landed first."""
        import icechunk

        with self._commit_lock():
            try:
                return session.commit(message, metadata=metadata, rebase_with=icechunk.ConflictDetector(),
                                      rebase_tries=5)
            except (icechunk.ConflictError, icechunk.RebaseFailedError) as exc:
                log.info("commit lost a race (%s); rewriting on the new head", type(exc).__name__)
                return None

    def append_cycle(
        self,
        ds: xr.Dataset,
        *,
        message: str | None = None,
        provenance: Mapping[str, Any],
        on_exists: OnExists = "skip",
        tag: bool = True,
        max_tries: int = 20,
    ) -> CycleResult:
        """Write one forecast cycle (one init time) as one atomic commit.

        ``provenance`` must contain ``source``, ``config``, ``checkpoint`` (hash) and ``data_snapshot``
        (values may be None); the code version and time are added. It is stored in the commit metadata
        and as the root ``provenance`` attribute.
        """
        from pipeline.provenance import provenance_record

        missing = [key for key in REQUIRED_PROVENANCE if key not in provenance]
        if missing:
            raise ValueError(f"provenance lacks {missing}; required keys: {list(REQUIRED_PROVENANCE)}")
        if on_exists not in ("skip", "replace", "error"):
            raise ValueError(f"on_exists must be 'skip', 'replace' or 'error', not {on_exists!r}")
        cycle = normalise_cycle(ds)
        init = np.datetime64(cycle["init_time"].values[0], "ns")
        record = provenance_record(**dict(provenance))
        message = message or f"forecast cycle {iso(init)}"
        for attempt in range(1, max_tries + 1):
            session = self.repo.writable_session(BRANCH)
            attrs = self._root_attrs(session)
            chunks = ChunkSpec(**attrs.get("chunking", {}))
            # xarray's append/region writes replace the root attrs: carry the store's own forward.
            cycle.attrs = {**dict(ds.attrs), **attrs, "provenance": record, "last_init_time": iso(init),
                           "domain": GridExtent.of(cycle["latitude"].values, cycle["longitude"].values).to_attrs()}
            if self._has_cycles(session):
                existing = _open_dataset(session)
                check_same_layout(existing, cycle)
                if "valid_time" not in existing.variables:  # a store written before valid_time was stored
                    cycle = cycle.drop_vars("valid_time", errors="ignore")
                hits = np.nonzero(existing["init_time"].values == init)[0]
                if len(hits):
                    if on_exists == "skip":
                        log.info("cycle %s is already in %s; skipped", iso(init), self.location)
                        repaired = self._repair_tag(init) if tag else None
                        return CycleResult(init_time=init, action="skipped", snapshot_id=session.snapshot_id,
                                           tag=repaired, tries=attempt)
                    if on_exists == "error":
                        raise UserError(f"{self.location}: cycle {iso(init)} is already in the store")
                    index = int(hits[-1])
                    region = cycle.drop_vars([n for n, v in cycle.variables.items() if "init_time" not in v.dims])
                    _to_zarr(region, session, region={"init_time": slice(index, index + 1)})
                    action: Literal["written", "replaced"] = "replaced"
                else:
                    _to_zarr(cycle, session, append_dim="init_time")
                    action = "written"
            else:
                _to_zarr(cycle, session, mode="a", encoding=_encoding(cycle, chunks))
                action = "written"
            if action == "replaced":  # region writes leave attrs alone
                _set_root_attrs(session, cycle.attrs)
            metadata = {"velocast": "cycle", "init_time": iso(init), "action": action, "provenance": record}
            with store_errors(self.location, f"commit the cycle {iso(init)}"):
                snapshot_id = self._commit(session, message, metadata)
            if snapshot_id is None:
                continue
            tag_name = self._tag_cycle(init, snapshot_id) if tag else None
            log.info("cycle %s %s in %s (snapshot %s)", iso(init), action, self.location, snapshot_id)
            return CycleResult(init_time=init, action=action, snapshot_id=snapshot_id, tag=tag_name, tries=attempt)
        raise RuntimeError(f"{self.location}: could not commit cycle {iso(init)} after {max_tries} tries")

    def _repair_tag(self, init: np.datetime64) -> str | None:
        """Tag the commit that wrote cycle ``init`` when no tag of it exists (a writer killed between its commit
        and its tag); returns the tag made, or None when the cycle was tagged already."""
        base = cycle_tag(init)
        if any(name == base or name.startswith(f"{base}-v") for name in self.repo.list_tags()):
            return None
        for record in self.snapshots():
            if record.metadata.get("velocast") == "cycle" and np.datetime64(record.metadata["init_time"], "ns") == init:
                log.info("cycle %s was committed but never tagged; tagged it now", iso(init))
                return self._tag_cycle(init, record.id)
        return None

    def _tag_cycle(self, init: np.datetime64, snapshot_id: str) -> str:
        """Tag the cycle's snapshot; a replaced cycle gets ``-v2``, ``-v3`` ... (tags are immutable)."""
        base = cycle_tag(init)
        existing = self.repo.list_tags()
        name, k = base, 1
        while name in existing:
            k += 1
            name = f"{base}-v{k}"
        return self.tag(name, snapshot=snapshot_id)

    def tag(self, name: str, *, snapshot: str | None = None) -> str:
        """Tag ``snapshot`` (default: head) as ``name``; returns the name."""
        import icechunk

        try:
            self.repo.create_tag(name, snapshot or self.head())
        except icechunk.IcechunkError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"{self.location}: cannot create tag '{name}' ({first})") from None
        return name

    # ------------------------------------------------------------------ maintenance
    def collect_garbage(self, *, grace: timedelta = timedelta(days=1), expire_before: datetime | None = None,
                        dry_run: bool = False) -> GarbageReport:
        """Delete the objects no branch or tag reaches (the chunks of writers killed before their commit) once
        they are older than ``grace``, so a cycle still being written keeps its chunks. With ``expire_before``,
        first drop the untagged history older than that instant (tagged cycles stay readable by tag).

        Commits wait while this runs (the commit lock is held)."""
        if grace < timedelta(0):
            raise UserError(f"the grace period must not be negative, got {grace}")
        now = datetime.now(UTC)
        with self._commit_lock(), store_errors(self.location, "collect garbage"):
            expired: set[str] = set()
            if expire_before is not None and not dry_run:
                expired = self.repo.expire_snapshots(expire_before.astimezone(UTC))
            summary = self.repo.garbage_collect(now - grace, dry_run=dry_run)
        return GarbageReport(dry_run=dry_run, expired_snapshots=len(expired), chunks=summary.chunks_deleted,
                             manifests=summary.manifests_deleted, snapshots=summary.snapshots_deleted,
                             transaction_logs=summary.transaction_logs_deleted,
                             attributes=summary.attributes_deleted, bytes=summary.bytes_deleted)

    # ------------------------------------------------------------------ side tables
    def write_table(self, name: str, ds: xr.Dataset, *, message: str, provenance: Mapping[str, Any],
                    max_tries: int = 20) -> str:
        """Replace the side table ``tables/<name>`` (e.g. verification scores) in one commit; returns
        the snapshot id. Tables live in their own group, so they never conflict with cycle writes."""
        from pipeline.provenance import provenance_record

        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"table name must be alphanumeric (with - or _), got {name!r}")
        record = provenance_record(**dict(provenance))
        ds = ds.copy()
        ds.attrs["provenance"] = record
        for _ in range(max_tries):
            session = self.repo.writable_session(BRANCH)
            _to_zarr(ds, session, group=f"tables/{name}", mode="w")
            sid = self._commit(session, message, {"velocast": "table", "table": name, "provenance": record})
            if sid is not None:
                return sid
        raise RuntimeError(f"{self.location}: could not commit table {name} after {max_tries} tries")

    def table(self, name: str, *, snapshot: str | None = None) -> xr.Dataset:
        """The side table ``tables/<name>`` as of ``snapshot`` (default head)."""
        import xarray as xr

        session = self.session(snapshot=snapshot)
        try:
            return xr.open_zarr(session.store, group=f"tables/{name}", consolidated=False, zarr_format=3,
                                decode_timedelta=True)
        except (FileNotFoundError, KeyError):
            raise UserError(f"{self.location}: no table '{name}'") from None


@dataclass(frozen=True)
class GarbageReport:
    """What :meth:`ForecastStore.collect_garbage` deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool
    expired_snapshots: int
    chunks: int
    manifests: int
    snapshots: int
    transaction_logs: int
    attributes: int
    bytes: int

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        expired = f"expired {self.expired_snapshots} snapshots; " if self.expired_snapshots else ""
        return (f"{expired}{verb} {self.chunks} chunks, {self.manifests} manifests, {self.snapshots} snapshots, "
                f"{self.transaction_logs} transaction logs ({self.bytes / 1e6:.2f} MB)")


def store_error_message(exc: BaseException) -> str | None:
    """One line for an error of Icechunk or Zarr reading a store (a damaged or unreachable repository, a
    missing or truncated chunk), or None for any other error."""
    module = type(exc).__module__ or ""
    name = type(exc).__name__
    if name == "GroupNotFoundError" and module.startswith("zarr"):
        return "its root group cannot be read (a damaged or truncated snapshot file?)"
    if any("numcodecs" in frame.filename for frame in traceback.extract_tb(exc.__traceback__)):
        return f"a chunk cannot be decoded, the file is truncated or damaged ({' '.join(str(exc).split())[:120]})"
    if module.startswith("icechunk") or name == "PanicException" or name.endswith("NotFoundError") and \
            module.startswith("zarr"):
        text = str(exc)
        os_error = re.search(r"([A-Z][a-z][^\"(]*) \(os error \d+\)", text)
        first = next((line.strip().lstrip("x").strip() for line in text.splitlines() if line.strip()), "")
        reason = os_error.group(1) if os_error else first
        return reason[:240] or name
    return None


@contextlib.contextmanager
def store_errors(location: str | Path, action: str) -> Iterator[None]:
    """Turn Icechunk and Zarr failures (and Icechunk's Rust panics, which are not Exceptions) inside the block
    into one UserError line naming the store and the action."""
    try:
        yield
    except UserError:
        raise
    except BaseException as exc:
        reason = store_error_message(exc)
        if reason is None:
            raise
        raise UserError(f"{location}: cannot {action}: {reason}") from None


def _parse_time(value: str | np.datetime64) -> np.datetime64:
    out = parse_instant(value)
    if out is None:
        raise UserError(f"bad time {value!r}; use ISO 8601 like 2020-01-01T00:00 (years 1678–2262)")
    return out


def _open_dataset(session: icechunk.Session) -> xr.Dataset:
    import xarray as xr

    return xr.open_zarr(session.store, consolidated=False, zarr_format=3, decode_timedelta=True)


def _encoding(cycle: xr.Dataset, chunks: ChunkSpec) -> dict[str, dict[str, Any]]:
    sizes = {str(k): int(v) for k, v in cycle.sizes.items()}
    enc: dict[str, dict[str, Any]] = {
        name: {"chunks": chunks.for_dims(tuple(str(d) for d in var.dims), sizes)}
        for name, var in cycle.data_vars.items()
    }
    enc["init_time"] = {"units": "seconds since 1970-01-01T00:00:00", "dtype": "int64"}
    enc["lead_time"] = {"units": "seconds", "dtype": "int64"}
    if "valid_time" in cycle.coords:
        enc["valid_time"] = {"units": "seconds since 1970-01-01T00:00:00", "dtype": "int64"}
    return enc


def _to_zarr(ds: xr.Dataset, session: icechunk.Session, **kwargs: Any) -> None:
    """Write ``ds`` (loaded into memory first) through the session's Zarr store.

    (``icechunk.xarray.to_icechunk`` 1.1 does not match the installed xarray's ``ZarrStore`` API; for
    in-memory data a plain ``to_zarr`` on the session store is equivalent.)"""
    ds.load().to_zarr(session.store, consolidated=False, zarr_format=3, **kwargs)


def _set_root_attrs(session: icechunk.Session, attrs: dict[str, Any]) -> None:
    import zarr

    zarr.open_group(session.store, mode="r+", zarr_format=3).attrs.update(attrs)
