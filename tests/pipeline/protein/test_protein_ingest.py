"""Ingest: every common format round-trips, selection/stride/alignment/concatenation, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.protein.geometry import rmsd
from pipeline.protein.ingest import ingest_protein
from pipeline.protein.store import open_structure_store

# Precision of each format's coordinates (nm): XTC stores 1e-3 nm, PDB 1e-4 nm (0.001 Å), others float32.
FORMAT_TOLERANCE = {"pdb": 6e-4, "dcd": 1e-5, "xtc": 6e-4, "h5": 1e-6, "nc": 1e-5, "trr": 1e-6}


def _needs_tables(fmt: str) -> None:
    """mdtraj's H5 format needs PyTables (``tables``); skip cleanly where it is not installed."""
    if fmt == "h5":
        pytest.importorskip("tables", reason="PyTables (`tables`) is needed for mdtraj's H5 format")


def _save(traj, path: Path) -> Path:
    traj.save(str(path))
    return path


@pytest.mark.parametrize("fmt", sorted(FORMAT_TOLERANCE))
def test_format_round_trip(tmp_path: Path, ala_traj, ala_pdb: Path, fmt: str) -> None:
    """A trajectory saved by mdtraj in each format ingests to the same coordinates (nm) and topology."""
    _needs_tables(fmt)
    path = _save(ala_traj, tmp_path / f"t.{fmt}")
    store = open_structure_store(
        ingest_protein(traj=[str(path)], top=ala_pdb, out=tmp_path / "s.zarr", progress=False)
    )
    assert store.coordinates.shape == (12, 22, 3)
    np.testing.assert_allclose(store.frames(), ala_traj.xyz, atol=FORMAT_TOLERANCE[fmt])
    assert store.topology.n_bonds == ala_traj.topology.n_bonds
    assert store.attrs["sources"][0]["sha256"]
    assert store.attrs["provenance"]["code_version"].startswith("velocast")


def test_multi_model_pdb_needs_no_top_and_keeps_every_model(tmp_path: Path, ala_traj) -> None:
    """A multi-model PDB is read with its own topology: one frame per MODEL."""
    path = _save(ala_traj, tmp_path / "multi.pdb")
    assert Path(path).read_text().count("MODEL") == 12
    store = open_structure_store(ingest_protein(traj=[str(path)], out=tmp_path / "s.zarr", progress=False))
    assert store.coordinates.shape[0] == 12
    np.testing.assert_allclose(store.frames(), ala_traj.xyz, atol=6e-4)


def test_concatenation_keeps_boundaries_and_stride_and_selection(
    tmp_path: Path, ala_traj, ala_pdb: Path
) -> None:
    """Two files of one topology concatenate in order; trajectory_start marks each; stride and
    selection apply to both; the time step reflects the stride."""
    a = _save(ala_traj, tmp_path / "a.dcd")
    b = _save(ala_traj[:5], tmp_path / "b.xtc")
    store = open_structure_store(
        ingest_protein(
            traj=[str(a), str(b)],
            top=ala_pdb,
            out=tmp_path / "s.zarr",
            select="backbone",
            stride=2,
            progress=False,
        )
    )
    backbone = ala_traj.topology.select("backbone")
    assert store.n_atoms == len(backbone)
    assert store.trajectory_start.tolist() == [0, 6]
    assert store.coordinates.shape[0] == 6 + 3
    np.testing.assert_allclose(store.frames()[:6], ala_traj.xyz[::2][:, backbone], atol=1e-5)
    np.testing.assert_allclose(store.frames()[6:], ala_traj.xyz[:5:2][:, backbone], atol=6e-4)
    assert store.time_step_ps == pytest.approx(4.0)  # from the XTC's times; the DCD has none
    assert [a.name for a in store.topology.atoms] == [ala_traj.topology.atom(i).name for i in backbone]


def test_time_step_is_null_for_timeless_formats_unless_given(tmp_path: Path, ala_traj, ala_pdb: Path) -> None:
    """DCD stores no times: time_step_ps is null, or --time-step-ps × stride when given."""
    path = _save(ala_traj, tmp_path / "a.dcd")
    plain = open_structure_store(
        ingest_protein(traj=[str(path)], top=ala_pdb, out=tmp_path / "p.zarr", progress=False)
    )
    assert plain.time_step_ps is None
    given = open_structure_store(
        ingest_protein(
            traj=[str(path)], top=ala_pdb, out=tmp_path / "g.zarr", stride=3, time_step_ps=0.5, progress=False
        )
    )
    assert given.time_step_ps == pytest.approx(1.5)


def test_align_to_frame_minimises_rmsd_to_that_frame(tmp_path: Path, ala_traj, ala_pdb: Path) -> None:
    """--align-to 0 superposes every frame on frame 0: RMSD to it equals the optimal (mdtraj) RMSD."""
    import mdtraj
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(3, random_state=2).as_matrix()
    moved = ala_traj.xyz.copy()
    for k in range(1, 4):
        moved[k] = moved[k] @ rot[k - 1].T.astype(np.float32) + 1.5
    traj = mdtraj.Trajectory(moved, ala_traj.topology)
    _needs_tables("h5")
    path = _save(traj, tmp_path / "t.h5")
    store = open_structure_store(
        ingest_protein(traj=[str(path)], out=tmp_path / "s.zarr", align_to="0", progress=False)
    )
    x = store.frames()
    np.testing.assert_allclose(rmsd(x, x[0]), mdtraj.rmsd(traj, traj, 0), atol=2e-5)
    assert store.attrs["aligned_to"] == "0"


def test_align_to_a_structure_file(tmp_path: Path, ala_traj, ala_pdb: Path) -> None:
    """--align-to FILE superposes the (selected) atoms onto that structure's."""
    path = _save(ala_traj, tmp_path / "t.dcd")
    store = open_structure_store(
        ingest_protein(
            traj=[str(path)],
            top=ala_pdb,
            out=tmp_path / "s.zarr",
            select="name CA C N",
            align_to=str(ala_pdb),
            progress=False,
        )
    )
    import mdtraj

    ref = mdtraj.load(str(ala_pdb))
    sel = ref.topology.select("name CA C N")
    centre_ref = ref.xyz[0][sel].mean(axis=0)
    np.testing.assert_allclose(store.frames().mean(axis=1), np.repeat(centre_ref[None], 12, 0), atol=1e-5)
    assert rmsd(store.frames(), ref.xyz[0][sel]).max() < 0.05


def test_builtin_source_ingests_the_cached_simulation(tmp_path: Path) -> None:
    """builtin:alanine-dipeptide?… simulates (cached) and ingests with topology, time step and MD cost."""
    store = open_structure_store(
        ingest_protein(
            traj=["builtin:alanine-dipeptide?ns=0.002&seed=3&equilibrate_ps=0&save_every_ps=0.2&replicas=2"],
            out=tmp_path / "s.zarr",
            select="not element H",
            progress=False,
        )
    )
    assert store.coordinates.shape == (20, 10, 3)
    assert store.trajectory_start.tolist() == [0, 10]  # one trajectory per replica
    assert store.time_step_ps == pytest.approx(0.2)
    assert store.attrs["md_cpu_seconds"] > 0
    assert all(i < 10 and j < 10 for i, j, _ in store.attrs["bond_lengths_nm"])


# ------------------------------------------------------------------ clear errors


def _bad_inputs(tmp: Path, ala_traj, ala_pdb: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (CLI args after `ingest protein`, expected message fragment)."""
    import mdtraj

    few = ala_traj.atom_slice(range(10))
    few.save(str(tmp / "few.dcd"))
    few.save(str(tmp / "few.xtc"))
    ala_traj.save(str(tmp / "full.dcd"))
    ala_traj.save(str(tmp / "full.xtc"))
    blob = (tmp / "full.dcd").read_bytes()
    (tmp / "trunc.dcd").write_bytes(blob[: len(blob) // 2 + 7])
    blob = (tmp / "full.xtc").read_bytes()
    (tmp / "trunc.xtc").write_bytes(blob[: len(blob) // 2 + 7])
    ala_traj.save(str(tmp / "full.nc"))
    blob = (tmp / "full.nc").read_bytes()
    (tmp / "trunc.nc").write_bytes(blob[: len(blob) // 2])
    (tmp / "garbage.xtc").write_bytes(os.urandom(2000))
    (tmp / "garbage.pdb").write_text("this is not a PDB\n" * 5)
    ala_traj.save_mdcrd(str(tmp / "full.mdcrd"))
    lines = (tmp / "full.mdcrd").read_text().splitlines(keepends=True)
    (tmp / "trunc.mdcrd").write_text("".join(lines[: len(lines) // 2]))
    few.save_mdcrd(str(tmp / "few.mdcrd"))
    (tmp / "a_folder.dcd").mkdir()
    nan = ala_traj.xyz.copy()
    nan[5, 3, 1] = np.nan
    mdtraj.Trajectory(nan, ala_traj.topology).save(str(tmp / "nan.nc"))
    top = ["--top", str(ala_pdb)]
    return {
        "atom count dcd": (["--traj", str(tmp / "few.dcd"), *top], "10 atoms but the topology has 22"),
        "atom count xtc": (["--traj", str(tmp / "few.xtc"), *top], "10 atoms but the topology has 22"),
        "truncated dcd": (["--traj", str(tmp / "trunc.dcd"), *top], "truncated"),
        "truncated xtc": (["--traj", str(tmp / "trunc.xtc"), *top], "truncated"),
        "truncated netcdf": (["--traj", str(tmp / "trunc.nc"), *top], "truncated"),
        "corrupt xtc": (["--traj", str(tmp / "garbage.xtc"), *top], "cannot read trajectory"),
        "corrupt topology": (
            ["--traj", str(tmp / "full.dcd"), "--top", str(tmp / "garbage.pdb")],
            "topology",
        ),
        "missing file": (["--traj", str(tmp / "nope.dcd"), *top], "not found"),
        "empty selection": (
            ["--traj", str(tmp / "full.dcd"), *top, "--select", "name ZZ"],
            "matches no atoms",
        ),
        "bad selection": (
            ["--traj", str(tmp / "full.dcd"), *top, "--select", "name (("],
            "invalid atom selection",
        ),
        "nan coordinates": (["--traj", str(tmp / "nan.nc"), *top], "non-finite"),
        "no topology": (["--traj", str(tmp / "full.dcd")], "give --top"),
        "truncated mdcrd": (["--traj", str(tmp / "trunc.mdcrd"), *top], "truncated mid-frame"),
        "atom count mdcrd": (["--traj", str(tmp / "few.mdcrd"), *top], "not a whole number of frames of the "
                                                                         "topology's 22 atoms"),
        "directory as trajectory": (["--traj", str(tmp / "a_folder.dcd"), *top], "is a directory"),
    }


def _api_args(cli: list[str]) -> dict:
    kw: dict = {"traj": [], "progress": False}
    it = iter(cli)
    for flag in it:
        value = next(it)
        if flag == "--traj":
            kw["traj"].append(value)
        else:
            kw[flag.lstrip("-")] = value
    return kw


CASES = [
    "atom count dcd",
    "atom count xtc",
    "truncated dcd",
    "truncated xtc",
    "truncated netcdf",
    "corrupt xtc",
    "corrupt topology",
    "missing file",
    "empty selection",
    "bad selection",
    "nan coordinates",
    "no topology",
    "truncated mdcrd",
    "atom count mdcrd",
    "directory as trajectory",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_a_one_line_user_error_and_writes_nothing(
    tmp_path: Path, ala_traj, ala_pdb: Path, case: str
) -> None:
    """Each bad input raises UserError naming the problem, and no store (or temp dir) is left."""
    args, fragment = _bad_inputs(tmp_path, ala_traj, ala_pdb)[case]
    out = tmp_path / "out" / "s.zarr"
    with pytest.raises(UserError, match=fragment) as info:
        ingest_protein(out=out, **_api_args(args))
    assert "\n" not in str(info.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_cli_exits_2_with_one_line_for_each_error_case(tmp_path: Path, ala_traj, ala_pdb: Path) -> None:
    """`python -m pipeline ingest protein` prints `error: …` on one line and exits 2, for every case."""
    cases = _bad_inputs(tmp_path, ala_traj, ala_pdb)
    script = (
        "import sys\nfrom pipeline.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print('RC', e.code, file=sys.stderr)\n"
    )
    # The real entry point once (exit status of the process itself) ...
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "ingest",
            "protein",
            *cases["atom count dcd"][0],
            "--out",
            str(tmp_path / "o.zarr"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 2, first.stderr
    assert "10 atoms but the topology has 22" in first.stderr
    assert "Traceback" not in first.stderr
    # ... and every case through main() in a second process (saves interpreter start-ups).
    for name, (args, fragment) in cases.items():
        proc = subprocess.run(
            [sys.executable, "-c", script, "ingest", "protein", *args, "--out", str(tmp_path / "o.zarr")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert "RC 2" in proc.stderr, (name, proc.stderr)
        assert len(lines) == 1 and fragment in " ".join(proc.stderr.split()), (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name
        assert not (tmp_path / "o.zarr").exists(), name


def test_a_dcd_whose_header_declares_more_frames_than_it_holds_is_read_with_a_warning(
        tmp_path: Path, ala_traj, ala_pdb: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stale DCD header (NSET 40, 12 whole frames on disk: a stopped run, a concatenation) is valid input:
    the 12 frames are read, with one warning giving both counts; a DCD cut inside a frame stays refused."""
    import struct

    ala_traj.save(str(tmp_path / "run.dcd"))
    blob = bytearray((tmp_path / "run.dcd").read_bytes())
    blob[8:12] = struct.pack("<i", 40)
    (tmp_path / "stale.dcd").write_bytes(bytes(blob))
    with caplog.at_level("WARNING"):
        store = open_structure_store(ingest_protein(traj=[str(tmp_path / "stale.dcd")], top=ala_pdb,
                                                    out=tmp_path / "s.zarr", progress=False))
    assert store.coordinates.shape[0] == 12
    assert "declares 40 frames but the file holds 12 whole frames" in caplog.text
    (tmp_path / "cut.dcd").write_bytes(bytes(blob[:-100]))
    with pytest.raises(UserError, match="the last one is incomplete"):
        ingest_protein(traj=[str(tmp_path / "cut.dcd")], top=ala_pdb, out=tmp_path / "c.zarr", progress=False)


def test_a_trajectory_under_a_non_ascii_path_is_read(tmp_path: Path, ala_traj, ala_pdb: Path) -> None:
    folder = tmp_path / "dür"
    folder.mkdir()
    ala_traj.save(str(tmp_path / "a.dcd"))  # mdtraj cannot write there either: written beside, then moved
    ala_traj.save_mdcrd(str(tmp_path / "a.mdcrd"))
    (tmp_path / "a.dcd").rename(folder / "läuft.dcd")
    (tmp_path / "a.mdcrd").rename(folder / "läuft.mdcrd")
    for name in ("läuft.dcd", "läuft.mdcrd"):
        store = open_structure_store(ingest_protein(traj=[str(folder / name)], top=ala_pdb,
                                                    out=tmp_path / f"{name}.zarr", progress=False))
        assert store.coordinates.shape == (12, 22, 3)


def test_native_libraries_print_nothing_of_their_own(tmp_path: Path, ala_traj, ala_pdb: Path) -> None:
    """mdtraj's DCD plugin announces every file and xdrfile prints "Undocumented error" on the process's own
    streams: the CLI shows only velocast's summary line, or its one error line."""
    ala_traj.save(str(tmp_path / "a.dcd"))
    ala_traj.save(str(tmp_path / "a.xtc"))
    blob = (tmp_path / "a.xtc").read_bytes()
    (tmp_path / "cut.xtc").write_bytes(blob[: int(len(blob) * 0.53)])
    cli = [sys.executable, "-m", "pipeline", "ingest", "protein", "--top", str(ala_pdb)]
    ok = subprocess.run([*cli, "--traj", str(tmp_path / "a.dcd"), "--out", str(tmp_path / "s.zarr")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "dcdplugin" not in ok.stdout + ok.stderr, ok.stdout + ok.stderr
    assert ok.stdout.strip().startswith("wrote") and ok.stdout.strip().count("\n") == 0
    bad = subprocess.run([*cli, "--traj", str(tmp_path / "cut.xtc"), "--out", str(tmp_path / "c.zarr")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert [line for line in bad.stderr.splitlines() if line.strip()] == [bad.stderr.strip()], bad.stderr
