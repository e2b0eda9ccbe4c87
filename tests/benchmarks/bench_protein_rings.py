"""Ring closure and the reach of internal coordinates: bond validity and clashes of samples against chain length.

    python tests/benchmarks/bench_protein_rings.py --out runs/rings            # AdK residues 1–10, 1–20, 1–30
    python tests/benchmarks/bench_protein_rings.py --top T.psf --traj T.dcd --residues 10,20 --minutes 3

For each length ``n`` of ``--residues``, the first ``n`` residues' heavy atoms of the MD (default: adenylate
kinase, MDAnalysisTests' real CHARMM trajectory, 98 frames) are ingested and an ensemble model is trained
``--minutes`` on one thread with ``--representation internal`` and with ``--representation modes``. 1,000
features are drawn from each (Heun ×8); the internal model's are decoded twice, without and with the ring closure
(:class:`pipeline.protein.chain.RingClosures`), so the two rows differ by the closure alone. Scores against the
training frames: the fraction of samples with every bond within 0.1 Å of that bond's mean over the frames, the
fraction clash-free (:func:`pipeline.protein.metrics.clash_free`), the worst bond error; the MD frames themselves
as the last row. Prints the table, writes ``OUT/bench_protein_rings.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def velocast(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pipeline", "--threads", "1", *args], check=True,
                   stdout=subprocess.DEVNULL)


def scores(x: np.ndarray, topology, mean: np.ndarray, pairs: np.ndarray) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from pipeline.protein.metrics import clash_free

    error = np.abs(np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1) - mean)
    return {"bond_valid": float(np.mean(error.max(axis=1) < 0.01)), "clash_free": float(clash_free(x, topology).mean()),
            "worst_bond_error_A": float(error.max() * 10)}


def measure(store_path: Path, model_dir: Path, *, n: int) -> list[dict]:
    """Rows for one trained model: its samples decoded (internal: open and closed), scored."""
    import torch

    from pipeline.protein.graph import bond_pairs
    from pipeline.protein.modeling.generate import _draw, _SampleStreams
    from pipeline.protein.modeling.model import load_protein_model
    from pipeline.protein.store import open_structure_store

    torch.set_num_threads(1)
    model = load_protein_model(model_dir)
    store = open_structure_store(store_path)
    frames, topology = store.frames(), store.topology
    pairs = bond_pairs(topology)
    mean = np.linalg.norm(frames[:, pairs[:, 0]] - frames[:, pairs[:, 1]], axis=-1).mean(axis=0)
    drawn, _ = _draw(model, n, condition=None, sampler="heun", steps=8, streams=_SampleStreams(0))
    featuriser = model.featuriser
    variants = [("modes", featuriser)]
    if hasattr(featuriser, "rings"):
        variants = [("internal, rings left open", dataclasses.replace(featuriser, rings=None)),
                    ("internal, rings closed", featuriser)]
    rows = []
    for label, decoder in variants:
        start = time.perf_counter()
        x = decoder.decode(drawn)
        rows.append({"representation": label, "decode_s": time.perf_counter() - start,
                     **scores(x, topology, mean, pairs)})
    rows.append({"representation": "the MD frames", **scores(frames, topology, mean, pairs)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", default=None, help="topology (default: MDAnalysisTests' adenylate kinase PSF)")
    parser.add_argument("--traj", default=None, help="trajectory (default: MDAnalysisTests' adenylate kinase DCD)")
    parser.add_argument("--residues", default="10,20,30", help="chain lengths, comma-separated")
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes per model, one thread")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/rings"))
    args = parser.parse_args(argv)
    if args.top is None or args.traj is None:
        from MDAnalysisTests import datafiles

        args.top, args.traj = args.top or datafiles.PSF, args.traj or datafiles.DCD
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in (int(v) for v in args.residues.split(",")):
        store = args.out / f"md_{n}.zarr"
        if not store.exists():
            velocast("ingest", "protein", "--top", str(args.top), "--traj", str(args.traj), "--select",
                     f"not element H and resid 0 to {n - 1}", "--out", str(store))
        for representation in ("internal", "modes"):
            model = args.out / f"model_{n}_{representation}"
            if not (model / "checkpoints").exists():
                velocast("train", "protein", "--data", str(store), "--representation", representation,
                         "--max-minutes", str(args.minutes), "--steps", "1000000", "--out", str(model), "--no-progress")
            rows = measure(store, model, n=args.samples)
            results += [{"residues": n, **row} for row in (rows if representation == "internal" else rows[:-1])]
    print(f"\n{'residues':>8}  {'representation':<28}{'bonds valid':>12}{'clash-free':>12}{'worst bond (Å)':>16}")
    for row in results:
        print(f"{row['residues']:>8}  {row['representation']:<28}{row['bond_valid']:>12.3f}{row['clash_free']:>12.3f}"
              f"{row['worst_bond_error_A']:>16.3f}")
    path = args.out / "bench_protein_rings.json"
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": results}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
