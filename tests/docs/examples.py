"""The examples of README.md and docs/*.md as data, and how tests/docs/test_examples.py runs them.

Every fenced block is an example of its page:

* ``bash``: run with ``bash -euo pipefail`` in the page's workspace; it must exit 0.
* ``python``: run as a script with this interpreter in the page's workspace; it must exit 0.
* ``console``: each ``$ `` line is a command (a line ending in ``\\`` continues it); the lines after it are
  what it prints. Each shown line must appear in what it really prints (stdout and stderr), in order, after
  normalising: numbers are ``#``, table borders and runs of spaces are one space, and ``...`` or ``…`` stands
  for anything (a line of just ``...`` is an elision). The command must exit 0, or 2 when the shown output
  has a line starting ``error:``.
* a block with ``title="PATH"`` (any language) is a file: a path that exists in the repository must hold
  exactly the block's text (the page shows the shipped file); any other path is written into the workspace.
* other languages (``text``, ``yaml``, ...) are shown, not run.

Markers, an HTML comment on the line directly above the block's opening fence:

* ``<!-- not-tested: REASON -->``: not run; the test is skipped with REASON. Its ``velocast`` command lines are
  still parsed by the real command line (every command and option must exist and every value parse).
* ``<!-- test: background -->``: a ``bash`` block that starts a server (``--port N``): started in the
  background, waited for until ``http://127.0.0.1:N/health`` answers, and stopped after the page.

A page's workspace stands for the repository root: it links every top-level entry of the checkout (so
``pipeline/weather/recipes/...`` resolves), and holds ``runs/weather-quick`` and ``runs/protein-quick``, copies
of the two quick runs of :data:`SESSION_RUNS`, which the test session runs once (their README blocks are
checked against that one run's output). A page's blocks run in order in one workspace.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
RUN_LANGUAGES = ("bash", "python", "console")

#: Commands the test session runs once, in a shared directory (command → the run directory it writes).
SESSION_RUNS = {
    "velocast run weather --quick --out runs/weather-quick": "runs/weather-quick",
    "velocast run protein --quick --out runs/protein-quick": "runs/protein-quick",
}
BLOCK_TIMEOUT_S = 600

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<info>[^`\n]*)$")
MARKER = re.compile(r"^\s*<!--\s*(not-tested|test):\s*(.*?)\s*-->\s*$")
TITLE = re.compile(r'title="([^"]+)"')


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    title: str | None
    code: str
    not_tested: str | None = None
    background: bool = False

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(PROJECT_ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.title is not None or self.language in RUN_LANGUAGES


def page_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order (markers attached)."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match.group("indent"), match.group("fence"), match.group("info").strip()
        body = []
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            text = lines[j]
            body.append(text[len(indent):] if text.startswith(indent) else text.lstrip())
            j += 1
        language = info.split()[0] if info else ""
        title = TITLE.search(info)
        block = Block(page, i + 1, language, title.group(1) if title else None, "\n".join(body) + "\n")
        above = i - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        marker = MARKER.match(lines[above]) if above >= 0 else None
        if marker and marker.group(1) == "not-tested":
            block.not_tested = marker.group(2) or "(no reason given)"
        elif marker and marker.group(2) == "background":
            block.background = True
        blocks.append(block)
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for page in PAGES if "hooks" not in page.parts for b in page_blocks(page) if b.runs]


# -- console output ------------------------------------------------------------------------------------------

BOX = re.compile(r"[\u2500-\u257f]")
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
ELLIPSIS = re.compile(r"\.\.\.|…")


def normalise(line: str) -> str:
    return " ".join(NUMBER.sub("#", BOX.sub(" ", line)).split())


def line_pattern(shown: str) -> re.Pattern[str]:
    pieces = [re.escape(normalise(piece)) for piece in ELLIPSIS.split(shown)]
    return re.compile(".*".join(pieces))


def check_output(shown: list[str], actual: str) -> str | None:
    """None if every shown line appears in ``actual`` in order; else what is missing."""
    lines = [normalise(line) for line in actual.splitlines()]
    position = 0
    for wanted in shown:
        if not wanted.strip() or ELLIPSIS.fullmatch(wanted.strip()):
            continue
        pattern = line_pattern(wanted)
        for k in range(position, len(lines)):
            if pattern.search(lines[k]):
                position = k + 1
                break
        else:
            return f"shown line not in the output (after line {position}): {wanted!r}"
    return None


def console_commands(code: str) -> list[tuple[str, list[str]]]:
    """``[(command, shown output lines)]`` of a console block."""
    found: list[tuple[str, list[str]]] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            found.append((" ".join(command.split()), []))
        elif found:
            found[-1][1].append(line)
        i += 1
    return found


# -- workspaces ----------------------------------------------------------------------------------------------


def environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VELOCAST_CACHE"] = str(cache)
    env["COLUMNS"] = "100"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PYTHONPATH", None)
    return env


def make_workspace(path: Path, runs: Path | None) -> Path:
    """A directory that stands for the repository root (links to its top-level entries), with copies of
    the session's quick runs under ``runs/``."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in PROJECT_ROOT.iterdir():
        if entry.name in (".git", ".venv", "runs", "site") or entry.name.endswith(".egg-info"):
            continue
        (path / entry.name).symlink_to(entry)
    if runs is not None:
        for source in sorted(runs.iterdir()):
            if source.is_dir():
                shutil.copytree(source, path / "runs" / source.name, symlinks=True)
    return path


@dataclass
class Page:
    """The state of one page's run: its workspace, the blocks already run, its background servers."""

    workspace: Path
    env: dict[str, str]
    done: set[int] = field(default_factory=set)
    servers: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self.servers.clear()


class ExampleError(AssertionError):
    pass


def _run(argv: list[str], page: Page, *, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=False, cwd=page.workspace, env=page.env, input=stdin, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT_S)


def run_block(block: Block, page: Page, session_outputs: dict[str, str]) -> None:
    """Run one block in its page's workspace; ExampleError says what went wrong."""
    where = block.id
    if block.title is not None:
        repo_file = PROJECT_ROOT / block.title
        if repo_file.is_file():
            if repo_file.read_text() != block.code:
                raise ExampleError(f"{where}: the block shows {block.title}, but differs from the file in the repository")
            return
        target = page.workspace / block.title
        if PROJECT_ROOT in target.resolve().parents:
            raise ExampleError(f"{where}: {block.title} would be written into the checkout; mark the block")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
        return
    if block.language == "python":
        done = _run([sys.executable, "-"], page, stdin=block.code)
        if done.returncode != 0:
            raise ExampleError(f"{where}: python exited {done.returncode}:\n{done.stdout[-4000:]}")
        return
    if block.language == "bash" and block.background:
        port = re.search(r"--port\s+(\d+)", block.code)
        if port is None:
            raise ExampleError(f"{where}: a background block needs --port N")
        process = subprocess.Popen(["bash", "-c", block.code], cwd=page.workspace, env=page.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        page.servers.append(process)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ExampleError(f"{where}: the server exited {process.returncode}:\n{process.stdout.read()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/health", timeout=2):
                    return
            except OSError as exc:
                if getattr(exc, "code", None):  # an HTTP status: the server answers
                    return
                time.sleep(0.5)
        raise ExampleError(f"{where}: nothing answered on port {port.group(1)} within 120 s")
    if block.language == "bash":
        done = _run(["bash", "-euo", "pipefail", "-c", block.code], page)
        if done.returncode != 0:
            raise ExampleError(f"{where}: bash exited {done.returncode}:\n{done.stdout[-4000:]}")
        return
    if block.language == "console":
        for command, shown in console_commands(block.code):
            if command in session_outputs:
                output, code = session_outputs[command], 0
            else:
                done = _run(["bash", "-o", "pipefail", "-c", command], page)
                output, code = done.stdout, done.returncode
            expected = 2 if any(line.startswith("error:") for line in shown) else 0
            if code != expected:
                raise ExampleError(f"{where}: `{command}` exited {code} (expected {expected}):\n{output[-4000:]}")
            problem = check_output(shown, output)
            if problem:
                raise ExampleError(f"{where}: `{command}`: {problem}\nit printed:\n{output[-6000:]}")
        return
    raise ExampleError(f"{where}: cannot run a {block.language!r} block")


# -- command lines of blocks that are not run -----------------------------------------------------------------


def command_lines(code: str) -> list[list[str]]:
    """The ``velocast ...`` command lines of a shell block (continuations joined, comments and ``$ `` dropped)."""
    found = []
    logical = ""
    for raw in code.splitlines():
        line = raw.removeprefix("$ ")
        logical += line
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        lexer = shlex.shlex(re.sub(r"\$\{?\w+\}?", "1", logical), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:
            words = []
        logical = ""
        cut = next((k for k, word in enumerate(words) if set(word) <= set("();<>|&")), len(words))
        words = words[:cut]
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value velocast ...
            words = words[1:]
        if words and words[0] == "velocast":
            found.append(words[1:])
    return found


def parse_command_line(args: list[str]) -> None:
    """Parse ``velocast ARGS`` with the real command line without running it; raises on an unknown command or
    option or a value that does not parse."""
    import typer.main

    from pipeline.cli import load_commands
    from pipeline.cli.root import app

    load_commands()
    command = typer.main.get_command(app)
    context = command.make_context("velocast", list(args))
    while hasattr(command, "commands"):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)
