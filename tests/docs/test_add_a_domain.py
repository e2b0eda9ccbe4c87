"""docs/add-a-domain.md works as written: its files, written into a package and registered, make a fourth domain
that `velocast run ring` runs with the in-process runner (cached on a re-run) and as a Prefect flow, with no
change to models/, flows/ or the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PAGE = PROJECT_ROOT / "docs" / "add-a-domain.md"


def page_files() -> dict[str, str]:
    """``path → source`` of every ``python title="..."`` block of the page."""
    blocks = re.findall(r'```python title="([^"]+)"\n(.*?)```', PAGE.read_text(), flags=re.S)
    return {path: source for path, source in blocks}


@pytest.fixture
def ring_domain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The page's files as the package ``pipeline.ring`` (on a temporary path), registered as a domain."""
    import pipeline
    from pipeline import domains

    files = page_files()
    assert set(files) == {"pipeline/ring/run.py", "pipeline/ring/domain.py"}
    for path, source in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    (tmp_path / "pipeline/ring/__init__.py").write_text('"""The ring domain of docs/add-a-domain.md."""\n')
    monkeypatch.setattr(pipeline, "__path__", [*pipeline.__path__, str(tmp_path / "pipeline")])
    registration = re.search(r'DOMAIN_MODULES\["ring"\] = "([\w.]+)"', PAGE.read_text())
    assert registration, "the page shows how to register the domain"
    monkeypatch.setitem(domains.DOMAIN_MODULES, "ring", registration.group(1))
    return "ring"


def test_the_page_builds_a_domain_that_runs_in_process(ring_domain: str, tmp_path: Path) -> None:
    from pipeline.domains import get_domain, resolve
    from pipeline.runs import run_local

    spec = resolve(get_domain(ring_domain).run)
    first = run_local(spec, spec.configure("quick"), tmp_path / "run", progress=False)
    assert [o.cached for o in first.outcomes] == [False, False, False]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert abs(metrics["radius_mean"] - 1) < 0.15  # a few hundred steps find the ring
    again = run_local(spec, spec.configure("quick"), tmp_path / "run", progress=False)
    assert all(o.cached for o in again.outcomes)


def test_the_page_domain_is_a_prefect_flow(ring_domain: str, tmp_path: Path, prefect_server) -> None:
    """`velocast run ring --runner prefect`: the `ring-pipeline` flow, one task per stage, the same metrics as
    in process."""
    from pipeline.cli import load_plugins
    from pipeline.cli.verbs import execute_run
    from pipeline.domains import get_domain, resolve
    from pipeline.runs import run_local

    load_plugins()
    spec = resolve(get_domain(ring_domain).run)
    by_prefect = execute_run(spec, spec.configure("quick"), tmp_path / "p", runner="prefect", refresh=False,
                             progress=False)
    assert by_prefect.runner == "prefect" and [o.name for o in by_prefect.outcomes] == ["train", "sample", "evaluate"]
    run_local(spec, spec.configure("quick"), tmp_path / "l", progress=False)
    assert (tmp_path / "p" / "metrics.json").read_text() == (tmp_path / "l" / "metrics.json").read_text()
