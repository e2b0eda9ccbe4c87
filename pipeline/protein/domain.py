"""The protein domain as the CLI and the runners see it: its run and its verbs (``train``, ``sample``,
``forecast``, ``evaluate``, ``distill``), declared once; :mod:`pipeline.cli.verbs` builds the commands."""

from __future__ import annotations

from typing import Any

from pipeline.base import SEED, Domain, Flag, Verb, comma_list, distill_verb, sampler_flag, train_verb

FORMATS = Flag("--formats", "formats", str, "Export formats, comma-separated (pdb, xtc, dcd, h5); empty for none.",
               parse=comma_list)


def sample_summary(store: Any, config: Any, out: Any) -> str:
    from pipeline.protein.store import open_structure_store

    rate = open_structure_store(store).attrs.get("samples_per_cpu_second", 0.0)
    return f"wrote {config.n} samples to {store} ({rate:,.0f} samples per CPU-second); exports in {out}/exports"


def forecast_summary(store: Any, config: Any, out: Any) -> str:
    return f"wrote {config.members} trajectories of {config.steps} lags to {store}; exports in {out}/exports"


def evaluate_summary(m: dict, config: Any, out: Any) -> str:
    def f(v: object) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    parts = []
    if m.get("basins"):
        b = m["basins"]
        parts += [f"rama_js {f(m['rama_js'])} (training {f(m['rama_js_training'])}, n={m['rama_js_n']} each)",
                  f"alpha_r samples {f(b['samples']['alpha_r'])} reference {f(b['reference']['alpha_r'])}"]
    if "fold" in m:
        fold = m["fold"]
        parts += [f"chain-valid {f(fold['chain_valid_fraction'])}",
                  f"Rg {fold['rg_angstrom']['samples']['mean']:.2f} Å ({fold['against']} "
                  f"{fold['rg_angstrom']['md']['mean']:.2f})",
                  f"nearest-frame RMSD {fold['nearest_md_rmsd_angstrom']['samples_median']:.2f} Å "
                  f"({fold['against']} {fold['nearest_md_rmsd_angstrom']['md_own_median']:.2f})"]
    parts += [f"valid {f(m['valid_fraction'])} (clash-free {f(m['clash_free_fraction'])})"]
    return "; ".join(parts) + f"\nwrote {out}/metrics.json and {out}/report.md"


def distill_summary(summary: dict, config: Any, out: Any) -> str:
    k = summary["student_steps"]
    made = (f"{summary['pairs']} teacher pairs at {summary['teacher_nfe']} calls each" if summary["method"] == "reflow"
            else f"a {summary['method']} fine-tune on the training frames")
    return (f"distilled the {summary['task']} model {config.model} -> {out}: {made}, {summary['steps']} student "
            f"steps; sample with --sampler euler "
            f"--steps {k} ({k} network calls)")


DOMAIN = Domain(
    name="protein",
    help="alanine dipeptide: MD → train → sample and forecast → evaluate",
    run="pipeline.protein.run:RUN",
    verbs=(
        train_verb("Train a flow-matching model of conformations (ensemble) or of time-lagged dynamics (forecast).",
                   config="pipeline.protein.modeling.train:ProteinTrainConfig",
                   run="pipeline.protein.modeling.train:train_protein",
                   objectives="fm (default) or another core preset.",
                   flags=(Flag("--data", "data", str, "Structure store (ingest protein / simulate peptide)."),
                          Flag("--task", "task", str, "ensemble (conformations) or forecast (x(t+τ) | x(t))."),
                          Flag("--lag-ps", "lag_ps", float, "Forecast lag τ in ps."),
                          Flag("--condition-balance", "condition_balance", float,
                               "Forecast: 1 (default) draws training pairs evenly over 64 clusters of the slowest "
                               "TICA components, so rare long-lived states are learnt too; 0 draws them uniformly."),
                          Flag("--condition-noise", "condition_noise", float,
                               "Forecast: σ of Gaussian noise added to training conditions (feature units; "
                               "default 0.3; 0 turns it off)."),
                          Flag("--representation", "representation", str,
                               "auto (default: internal up to 10 residues, else modes), internal (bond lengths, "
                               "angles, dihedrals), modes (whitened principal modes, chain kept) or cartesian."),
                          Flag("--bonds", "bonds", str, "internal only: fixed (default: each bond held at its mean "
                                                        "training length) or learned (bond lengths are features "
                                                        "too)."))),
        Verb("sample", "Draw independent conformations; write a structure store plus PDB/XTC/DCD for VMD and PyMOL.",
             config="pipeline.protein.modeling.generate:SampleConfig",
             run="pipeline.protein.modeling.generate:sample_protein",
             summary="pipeline.protein.domain:sample_summary", out="Output directory: samples.zarr and exports/.",
             flags=(Flag("--model", "model", str, "Ensemble model run directory or checkpoint."),
                    Flag("--n", "n", int, "Number of conformations."), sampler_flag(),
                    Flag("--steps", "steps", int, "Sampler steps (default: the model's own, else 16)."), SEED,
                    FORMATS)),
        Verb("forecast", "Roll a time-lagged model out into trajectories (member, frame, atom, xyz) plus PDB/XTC/DCD.",
             config="pipeline.protein.modeling.generate:ForecastConfig",
             run="pipeline.protein.modeling.generate:forecast_protein",
             summary="pipeline.protein.domain:forecast_summary",
             out="Output directory: trajectories.zarr and exports/.",
             flags=(Flag("--model", "model", str, "Forecast model run directory or checkpoint."),
                    Flag("--start", "start", str, "Start structure: STORE.zarr[:FRAME] or a file mdtraj reads."),
                    Flag("--steps", "steps", int, "Number of lags τ to roll out."),
                    Flag("--members", "members", int, "Independent trajectories."), sampler_flag(),
                    Flag("--sampler-steps", "sampler_steps", int, "Sampler steps per lag (default: the model's own, "
                                                                  "else 16)."), SEED, FORMATS)),
        Verb("evaluate", "Score samples against reference MD: Ramachandran JS, basins, validity, chain and fold (Cα), "
                         "free energy, cost, "
                         "dynamics.",
             config="pipeline.protein.modeling.evaluate:EvaluateConfig",
             run="pipeline.protein.modeling.evaluate:evaluate_protein",
             summary="pipeline.protein.domain:evaluate_summary",
             out="Report directory (metrics.json, report.md, plots).",
             flags=(Flag("--samples", "samples", str, "Structure store of generated samples or forecast trajectories."),
                    Flag("--reference", "reference", str, "Structure store of the reference MD (independent run)."),
                    Flag("--training", "training", str, "Structure store of the training MD (for rama_js_training, "
                                                        "its basins and the MD cost)."))),
        Verb("export", "Export a structure store to PDB/XTC/DCD: all of it, --n evenly spaced structures, or "
                       "rebuilt all-atom from backbone samples (--all-atom: PDBFixer adds the side chains).",
             config="pipeline.protein.export:ExportProteinConfig", run="pipeline.protein.export:export_protein",
             summary="pipeline.protein.export:export_summary", out=None,
             flags=(Flag("STORE", "store", str, "Structure store (samples, forecasts or MD).", positional=True),
                    Flag("OUT", "out", str, "Output directory: exports/ (and structures.zarr for a subset or a "
                                            "rebuild).", positional=True),
                    Flag("--all-atom", "all_atom", bool, "Rebuild side chains and OXT of backbone structures with "
                                                         "PDBFixer (1–1.5 minutes per 200 residues).", value=True),
                    Flag("--hydrogens", "hydrogens", bool, "With --all-atom: add hydrogens (pH 7).", value=True),
                    Flag("--n", "n", int, "Export this many evenly spaced structures (default: all; with "
                                          "--all-atom: 10)."),
                    SEED, FORMATS,
                    Flag("--overwrite", "overwrite", bool, "Replace an existing output.", value=True))),
        distill_verb("Distil a protein model into a few-step student (reflow).",
                     config="pipeline.protein.modeling.distill:DistillProteinConfig",
                     run="pipeline.protein.modeling.distill:distill_protein",
                     summary="pipeline.protein.domain:distill_summary", calls="network calls per sample",
                     data="Structure store for a forecast model's conditions (default: the teacher's)."),
    ),
)
