"""The CLI's contract: --help and --version work, user errors are one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline import __version__
from pipeline.cli import main
from pipeline.errors import UserError


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120
    )


def test_version_prints_the_installed_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"velocast {__version__}"


def test_help_lists_the_registered_groups() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "velocast" in result.stdout


def test_user_error_is_one_line_on_stderr_with_exit_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import typer

    from pipeline.cli import root

    probe = typer.Typer()

    @probe.command()
    def boom() -> None:
        raise UserError("variable 'temperature' is missing", path="input.nc")

    monkeypatch.setattr(root, "app", probe)
    monkeypatch.setattr("pipeline.cli.load_commands", lambda: None)  # keep the real commands off the probe
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "input.nc: variable 'temperature' is missing" in err
    assert "Traceback" not in err


def test_unknown_command_exits_2_without_traceback() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, words", [
    (("no-such-command",), "No such command 'no-such-command'. (see `velocast -h`)"),
    (("train", "weather"), "Missing option '--out' / '-o'. (see `velocast train weather -h`)"),
    (("ingest", "protein", "--traj", "x.dcd", "--out", "o.zarr", "--stride", "0"), "Invalid value for '--stride'"),
])
def test_a_command_line_mistake_is_one_line(args: tuple[str, ...], words: str) -> None:
    """Usage errors (unknown command, missing option, bad value) are one `error:` line with where to look, exit 2,
    not Click's boxed usage block."""
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and words in result.stderr, result.stderr


def test_help_and_a_bare_group_still_print_help() -> None:
    assert run_cli("--help").returncode == 0
    bare = run_cli("store")
    assert bare.returncode == 2 and "gc" in bare.stdout + bare.stderr
