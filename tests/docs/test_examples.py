"""Every example of README.md and docs/*.md runs as written (conventions: tests/docs/examples.py).

The two quick runs the pages use (``velocast run weather --quick`` and ``velocast run protein --quick``) run
once per session, through the default runner against the session's Prefect server; each page works on its
own copy of them. A test selected on its own first runs the blocks of its page that come before it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.docs.examples import (
    SESSION_RUNS,
    ExampleError,
    Page,
    all_blocks,
    command_lines,
    environment,
    make_workspace,
    parse_command_line,
    run_block,
)

BLOCKS = all_blocks()


@pytest.fixture(scope="session")
def session_runs(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, dict[str, str]]:
    """The quick runs of :data:`SESSION_RUNS`, run once: (the directory holding ``runs/``, command → output)."""
    root = tmp_path_factory.mktemp("docs-session")
    cache = root / "cache"
    env = environment(cache)
    running = {command: subprocess.Popen(["bash", "-c", command], cwd=root, env=env, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for command in SESSION_RUNS}  # side by side: the atmosphere runs on one core, the MD on the other
    outputs = {}
    for command, process in running.items():
        output, _ = process.communicate(timeout=1200)
        assert process.returncode == 0, f"`{command}` exited {process.returncode}:\n{output[-4000:]}"
        outputs[command] = output
    return root, outputs


@pytest.fixture(scope="session")
def pages(session_runs, tmp_path_factory: pytest.TempPathFactory):
    """Page path → its :class:`Page` (workspace made on first use); background servers stop at the end."""
    made: dict[Path, Page] = {}
    root, _ = session_runs

    def get(page: Path) -> Page:
        if page not in made:
            for other in made.values():
                other.stop()
            workspace = make_workspace(tmp_path_factory.mktemp(page.stem), root / "runs")
            made[page] = Page(workspace, environment(root / "cache"))
        return made[page]

    yield get
    for page in made.values():
        page.stop()


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example(block, pages, session_runs) -> None:
    if block.not_tested:
        for args in command_lines(block.code) if block.language in ("bash", "console") else []:
            try:
                parse_command_line(args)
            except Exception as exc:  # noqa: BLE001 (Click's usage errors, from typer's vendored copy)
                message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            else:
                continue
            pytest.fail(f"{block.id}: `velocast {' '.join(args)}` does not parse: {message}", pytrace=False)
        pytest.skip(f"not tested: {block.not_tested}")
    _, outputs = session_runs
    page = pages(block.page)
    for earlier in BLOCKS:
        if earlier.page == block.page and earlier.line < block.line and earlier.line not in page.done:
            page.done.add(earlier.line)
            if not earlier.not_tested:
                run_block(earlier, page, outputs)
    page.done.add(block.line)
    try:
        run_block(block, page, outputs)
    except ExampleError as exc:
        problem = str(exc)
    else:
        return
    pytest.fail(problem, pytrace=False)


def test_every_page_has_examples_or_none_to_run() -> None:
    """The parser sees the pages' blocks (a changed fence syntax would silently test nothing)."""
    assert any(b.page.name == "README.md" for b in BLOCKS)
    assert {b.language for b in BLOCKS} >= {"bash", "console"}
