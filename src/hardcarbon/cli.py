"""The ``hardcarbon`` command line: a thin layer over the Python API, one command per stage.

Bad input ends with a one-line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import logging
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hardcarbon.errors import InputError

app = typer.Typer(
    help="Sodium storage in hard-carbon anodes with machine-learned force fields.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# options that several commands share
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML file with the command's settings")
]
WorkdirOption = Annotated[Path, typer.Option("--workdir", "-w", help="run folder")]
SeedOption = Annotated[int | None, typer.Option(help="random seed")]
ModelOption = Annotated[Path | None, typer.Option(help="Na–C nep.txt (default: the bundled model)")]


class _EchoHandler(logging.Handler):
    """Progress messages of the package on stderr (resolved at each message, so that a
    redirected or captured stderr gets them)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"hardcarbon: {record.getMessage()}", err=True)


@app.callback()
def _progress_messages() -> None:
    package = logging.getLogger("hardcarbon")
    if not any(isinstance(h, _EchoHandler) for h in package.handlers):
        package.addHandler(_EchoHandler())
        package.setLevel(logging.INFO)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _reports_bad_input(command):
    """Turn bad input into one line and exit status 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            _fail(str(exc))

    return wrapper


@app.command()
@_reports_bad_input
def build(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="extended-XYZ file to write")
    ] = Path("hard_carbon.xyz"),
    density: Annotated[float | None, typer.Option(help="density (g/cm³) [1.5]")] = None,
    box: Annotated[float | None, typer.Option(help="cubic box edge (Å) [43.6]")] = None,
    n_atoms: Annotated[int | None, typer.Option(help="number of carbon atoms")] = None,
    min_distance: Annotated[float | None, typer.Option(help="minimum C–C distance (Å)")] = None,
    potential: Annotated[
        str | None, typer.Option(help="rebo, lcbop, tersoff or a nep.txt path [rebo]")
    ] = None,
    start: Annotated[Path | None, typer.Option(help="anneal this structure instead")] = None,
    seed: SeedOption = None,
    threads: Annotated[int | None, typer.Option(help="OpenMP threads (0 = all cores)")] = None,
    config: ConfigOption = None,
) -> None:
    """Build a hard-carbon model: random carbon placement, anneal, minimisation."""
    from hardcarbon.storage import write_json, write_structure
    from hardcarbon.structures import BuildConfig, build_hard_carbon

    settings = BuildConfig.from_yaml(config, density=density, box=box, n_atoms=n_atoms,
                                     min_distance=min_distance, potential=potential,
                                     start=start, seed=seed, threads=threads)
    checkpoints = output.with_name(output.name + ".checkpoints")
    atoms, summary = build_hard_carbon(settings, workdir=checkpoints)
    summary.update(_quick_structure_summary(atoms))
    write_structure(output, atoms)
    write_json(output.with_suffix(".json"), summary)
    shutil.rmtree(checkpoints, ignore_errors=True)
    typer.echo(f"wrote {output} ({summary['n_atoms']} atoms, {summary['density']:.3f} g/cm³) "
               f"and {output.with_suffix('.json')}")


def _quick_structure_summary(atoms) -> dict[str, Any]:
    from hardcarbon.analysis import hybridisation, min_distance

    return {"hybridisation": hybridisation(atoms), "min_cc_distance": min_distance(atoms)}


@app.command()
@_reports_bad_input
def analyze(
    structure: Annotated[Path, typer.Argument(help="structure file (extended XYZ, CIF, ...)")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="folder for JSON and PNG")
                      ] = None,
    probe_radius: Annotated[float | None, typer.Option(help="pore probe radius (Å) [1.0]")] = None,
    cutoff: Annotated[float | None, typer.Option(help="C–C bond cutoff (Å) [1.85]")] = None,
    config: ConfigOption = None,
) -> None:
    """Characterise a structure: density, sp/sp2/sp3, rings, RDFs, XRD, pores."""
    from hardcarbon.analysis import AnalyzeConfig, write_analysis
    from hardcarbon.storage import read_structure

    settings = AnalyzeConfig.from_yaml(config, probe_radius=probe_radius, cutoff=cutoff)
    atoms = read_structure(structure)
    outdir = output or structure.with_name(structure.stem + "_analysis")
    summary = write_analysis(atoms, outdir, settings)
    _print_analysis(summary)
    typer.echo(f"wrote {outdir}/analysis.json and figures")


def _print_analysis(summary: dict[str, Any]) -> None:
    hyb, xrd, pores = summary["hybridisation"], summary["xrd_002"], summary["pores"]
    rings = summary["rings"]
    peak = summary["rdf_first_peaks"].get("C-C")

    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    lines = [
        f"atoms {summary['n_atoms']}  density {summary['density']:.3f} g/cm³",
        f"sp {hyb['sp']:.3f}  sp2 {hyb['sp2']:.3f}  sp3 {hyb['sp3']:.3f}",
        "rings 5/6/7: " + "/".join(str(rings.get(k, 0)) for k in (5, 6, 7)),
        f"C–C RDF first peak {fmt(peak, '.3f')} Å  min C–C "
        f"{fmt(summary['min_cc_distance'], '.3f')} Å",
        f"XRD (002) 2θ {fmt(xrd['two_theta_deg'], '.2f')}°  d002 "
        f"{fmt(xrd['d002_angstrom'], '.3f')} Å  FWHM {fmt(xrd['fwhm_deg'], '.2f')}°  "
        f"Lc {fmt(xrd['lc_angstrom'], '.1f')} Å",
        f"porosity {pores['porosity']:.3f}  largest pore {pores['largest_pore_diameter']:.2f} Å",
    ]
    typer.echo("\n".join(lines))


@app.command()
@_reports_bad_input
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the results")] = Path(
        "hardcarbon-demo"),
    box: Annotated[float, typer.Option(help="cubic box edge (Å)")] = 25.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    batch_size: Annotated[int, typer.Option(help="Na per sodiation iteration")] = 25,
) -> None:
    """The main job on defaults: build, characterise and sodiate a small hard-carbon model."""
    from hardcarbon.analysis import write_analysis
    from hardcarbon.sodiation.figures import write_figures
    from hardcarbon.sodiation.run import SodiationConfig
    from hardcarbon.sodiation.run import sodiate as run_sodiation
    from hardcarbon.storage import write_json, write_structure
    from hardcarbon.structures import BuildConfig, build_hard_carbon

    settings = BuildConfig(box=box, seed=seed)
    typer.echo(f"building a {box:g} Å hard-carbon model with {settings.potential} "
               f"({sum(s.length_ps for s in settings.stages):g} ps of annealing) ...")
    atoms, summary = build_hard_carbon(settings, workdir=output / "checkpoints")
    write_structure(output / "hard_carbon.xyz", atoms)
    write_json(output / "build.json", summary)
    shutil.rmtree(output / "checkpoints", ignore_errors=True)
    analysis = write_analysis(atoms, output)
    _print_analysis(analysis)
    typer.echo(f"wrote {output}/: hard_carbon.xyz, build.json, analysis.json, "
               "xrd.png, rdf.png, rings.png, pores.png")
    # a small box: smaller batches than the study's 50, looser relaxations, same physics
    sodiation = SodiationConfig(batch_size=batch_size, fmax=0.1, max_steps=300, seed=seed)
    typer.echo(f"sodiating with the bundled Na–C model, {batch_size} Na per iteration ...")
    result = run_sodiation(atoms, sodiation, output / "sodiation")
    write_figures(output / "sodiation")
    _print_sodiation(result, output / "sodiation")


def _print_sodiation(summary: dict[str, Any], workdir: Path) -> None:
    zero = summary["capacity_at_zero_volt"]
    if zero is not None and zero["reached_zero"]:
        typer.echo(f"capacity at 0 V: {zero['capacity']:.1f} mAh/g")
    elif zero is not None:
        typer.echo(f"0 V not reached ({summary['stopped']}); {zero['capacity']:.1f} mAh/g so "
                   "far")
    typer.echo(f"{summary['n_na']} Na, sites {summary['site_counts']}; wrote {workdir}/: "
               "sodiation.csv, summary.json, states/, voltage.png, site_fractions.png, "
               "snapshots.png, environments.png, site_distribution.png")


@app.command()
@_reports_bad_input
def classify(
    structure: Annotated[Path, typer.Argument(help="sodiated structure file")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="labelled extended XYZ (and a .json beside it)")] = None,
    r_contact: Annotated[float | None, typer.Option(help="Na–C first shell (Å) [2.7]")] = None,
    r_shell: Annotated[float | None, typer.Option(help="wider Na–C shell (Å) [3.5]")] = None,
    r_na_na: Annotated[float | None, typer.Option(help="Na–Na cluster bond (Å) [3.9]")] = None,
    delta: Annotated[float, typer.Option(help="cut-off shift for the sensitivity (Å)")] = 0.1,
    config: ConfigOption = None,
) -> None:
    """Label each Na as adsorption, intercalation or filling; report cut-off sensitivity."""
    from hardcarbon.sodiation import (
        SITE_CLASSES,
        SiteRules,
        classify_sites,
        site_labels_array,
        site_sensitivity,
    )
    from hardcarbon.storage import read_structure, write_json, write_structure

    rules = SiteRules.from_yaml(config, r_contact=r_contact, r_shell=r_shell, r_na_na=r_na_na)
    atoms = read_structure(structure)
    result = classify_sites(atoms, rules)
    sensitivity = site_sensitivity(atoms, rules, delta)
    output = output or structure.with_name(structure.stem + "_sites.xyz")
    atoms.arrays["site"] = site_labels_array(atoms, result)
    write_structure(output, atoms)
    write_json(output.with_suffix(".json"), {**result.as_dict(), "sensitivity": sensitivity})
    typer.echo("counts: " + "  ".join(f"{k} {result.counts[k]}" for k in SITE_CLASSES))
    typer.echo(f"change of the counts when a cut-off moves by ∓{delta:g} Å "
               "(adsorption/intercalation/filling):")
    for name, sides in sensitivity["shifts"].items():
        cells = [f"{side} {'/'.join(f'{v:+d}' for v in sides[side]['change'].values())}"
                 for side in ("minus", "plus")]
        typer.echo(f"  {name:>9}: " + "   ".join(cells))
    typer.echo(f"wrote {output} and {output.with_suffix('.json')}")


@app.command()
@_reports_bad_input
def sodiate(
    structure: Annotated[Path, typer.Argument(help="bare hard-carbon host (extended XYZ)")],
    workdir: WorkdirOption = Path("sodiation"),
    model: ModelOption = None,
    batch_size: Annotated[int | None, typer.Option(help="Na per iteration [50]")] = None,
    target_na: Annotated[int | None, typer.Option(help="go on past 0 V to this Na count")
                         ] = None,
    seed: SeedOption = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --workdir")] = False,
    config: ConfigOption = None,
) -> None:
    """Insert Na batch by batch (Monte Carlo, relaxed each time); voltage curve and sites."""
    from hardcarbon.sodiation.figures import write_figures
    from hardcarbon.sodiation.run import SodiationConfig
    from hardcarbon.sodiation.run import sodiate as run_sodiation
    from hardcarbon.storage import read_structure

    settings = SodiationConfig.from_yaml(config, model=model, batch_size=batch_size,
                                         target_na=target_na, seed=seed)
    summary = run_sodiation(read_structure(structure), settings, workdir, resume=resume)
    write_figures(workdir)
    _print_sodiation(summary, workdir)


dataset_app = typer.Typer(help="Training structures and their reference labels.",
                          no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("generate")
@_reports_bad_input
def dataset_generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="extended-XYZ file to write")
                      ] = Path("dataset.xyz"),
    seed: SeedOption = None,
    max_atoms: Annotated[int | None, typer.Option(help="largest cell (atoms)")] = None,
    config: ConfigOption = None,
) -> None:
    """Training structures of the five families, tagged with config_type."""
    from collections import Counter

    from hardcarbon.forcefield.families import DatasetConfig, generate_dataset
    from hardcarbon.storage import write_structure

    settings = DatasetConfig.from_yaml(config, seed=seed, max_atoms=max_atoms)
    structures = generate_dataset(settings)
    write_structure(output, structures)
    counts = Counter(a.info["family"] for a in structures)
    typer.echo(f"wrote {len(structures)} structures to {output}: "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))


@dataset_app.command("label")
@_reports_bad_input
def dataset_label(
    structures: Annotated[Path, typer.Argument(help="extended-XYZ file of structures")],
    folder: Annotated[Path, typer.Option("--folder", help="one labelled file per structure")
                      ] = Path("labels"),
    output: Annotated[Path, typer.Option("--output", "-o", help="GPUMD training file")
                      ] = Path("labelled.xyz"),
    calculator: Annotated[str | None, typer.Option(
        help="gpaw, sevenn, vasp, emt or module:factory [gpaw]")] = None,
    workers: Annotated[int | None, typer.Option(help="parallel processes")] = None,
    config: ConfigOption = None,
) -> None:
    """Label structures with a reference calculator; a rerun skips what is done."""
    from hardcarbon.forcefield.labelling import (
        LabelConfig,
        label_structures,
        write_training_file,
    )
    from hardcarbon.storage import read_frames

    settings = LabelConfig.from_yaml(config, calculator=calculator, workers=workers)
    frames = read_frames(structures)
    labelled = label_structures(frames, settings, folder)
    write_training_file(labelled, output)
    typer.echo(f"{len(labelled)} of {len(frames)} structures labelled in {folder}; "
               f"training file {output}")


@dataset_app.command("combine")
@_reports_bad_input
def dataset_combine(
    primary: Annotated[Path, typer.Argument(help="labels of the reference method (e.g. GPAW)")],
    secondary: Annotated[Path, typer.Argument(help="broader labels (e.g. SevenNet + D3)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="GPUMD training file")
                      ] = Path("combined.xyz"),
    weight: Annotated[float, typer.Option(help="GPUMD weight of the secondary structures")
                      ] = 0.1,
) -> None:
    """Merge two label sets on the primary's energy zero, the secondary down-weighted."""
    from hardcarbon.forcefield.labelling import write_training_file
    from hardcarbon.forcefield.training import combine_references, load_training_data

    structures, shifts = combine_references(load_training_data(primary),
                                            load_training_data(secondary), weight)
    write_training_file(structures, output)
    typer.echo(f"wrote {len(structures)} structures to {output}; secondary energies shifted by "
               + ", ".join(f"{k} {v:+.4f} eV" for k, v in shifts.items()
                           if k not in ("rms_residual_meV_atom", "shared_structures"))
               + f" per atom (fit on {shifts['shared_structures']} shared structures, RMS "
               f"residual {shifts['rms_residual_meV_atom']:.1f} meV/atom)")


@app.command()
@_reports_bad_input
def train(
    data: Annotated[Path, typer.Argument(help="labelled extended XYZ, train.xyz or label folder")],
    workdir: WorkdirOption = Path("nep-train"),
    engine: Annotated[str | None, typer.Option(help="auto, neppo or gpumd [auto]")] = None,
    steps: Annotated[int | None, typer.Option(help="neppo optimisation steps")] = None,
    device: Annotated[str | None, typer.Option(help="neppo's PyTorch device: cpu or cuda [cpu]")
                      ] = None,
    seed: SeedOption = None,
    config: ConfigOption = None,
) -> None:
    """Train a NEP4 model (neppo on the CPU, GPUMD's nep when on PATH); resumes if stopped."""
    from hardcarbon.forcefield.training import TrainConfig, train_nep

    settings = TrainConfig.from_yaml(config, engine=engine, steps=steps, device=device,
                                     seed=seed)
    model = train_nep(data, settings, workdir)
    typer.echo(f"wrote {model}")


@app.command()
@_reports_bad_input
def learn(
    workdir: WorkdirOption = Path("learning"),
    iterations: Annotated[int | None, typer.Option(help="largest number of iterations [5]")
                          ] = None,
    config: ConfigOption = None,
) -> None:
    """Active learning: train a committee, explore by MD, label what it disagrees on, repeat."""
    from hardcarbon.forcefield.learning import LearnConfig
    from hardcarbon.forcefield.learning import learn as run_learning

    settings = LearnConfig.from_yaml(config, max_iterations=iterations)
    result = run_learning(settings, workdir)

    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    for row in result["iterations"]:
        typer.echo(f"iteration {row['iteration']}: force RMSE {fmt(row['force_rmse_meV_A'], '.0f')}"
                   f" meV/Å, median disagreement {fmt(row['disagreement_median_eV_A'], '.3f')} "
                   f"eV/Å, {row['n_selected']} selected, "
                   + ("not labelled" if row["n_labelled"] is None
                      else f"{row['n_labelled']} labelled"))
    typer.echo(f"stopped: {result['stop_message']}; final model {result['final_model']}")
    typer.echo(f"wrote {workdir}/learning.json and learning.png")


@app.command()
@_reports_bad_input
def validate(
    model: Annotated[Path, typer.Argument(help="nep.txt to validate")],
    workdir: WorkdirOption = Path("validation"),
    reference: Annotated[str | None, typer.Option(
        help="reference calculator: gpaw, sevenn, vasp or module:factory [gpaw]")] = None,
    relax: Annotated[bool | None, typer.Option(
        "--relax/--no-relax", help="also the Table 1 relaxations [relax]")] = None,
    config: ConfigOption = None,
) -> None:
    """Physical checks and relaxed-structure comparison (Table 1) against the reference."""
    from hardcarbon.forcefield.validation import ValidateConfig
    from hardcarbon.forcefield.validation import validate as run_validation

    if not model.is_file():
        raise InputError(f"model {model} does not exist: give a nep.txt")
    settings = ValidateConfig.from_yaml(config, relax=relax)
    if reference is not None:
        settings = ValidateConfig.model_validate(
            {**settings.model_dump(), "reference": {**settings.reference.model_dump(),
                                                    "calculator": reference}})
    run_validation(model, settings, workdir)
    typer.echo((workdir / "validation.md").read_text().rstrip())
    typer.echo(f"wrote {workdir}/validation.json and validation.md")


@app.command()
@_reports_bad_input
def stability(
    structure: Annotated[Path, typer.Argument(help="periodic structure, e.g. a sodiated state")],
    workdir: WorkdirOption = Path("stability"),
    model: ModelOption = None,
    temperature: Annotated[list[float] | None, typer.Option(
        help="NVT temperature (K), repeatable [300, 1000]")] = None,
    time_ps: Annotated[float | None, typer.Option(help="length of each run (ps) [5]")] = None,
    config: ConfigOption = None,
) -> None:
    """NVT MD at each temperature: shortest distance, energy drift and cost per step."""
    from hardcarbon.forcefield.stability import StabilityConfig, md_stability, stability_table
    from hardcarbon.storage import read_structure

    settings = StabilityConfig.from_yaml(config, model=model, temperatures=temperature or None,
                                         time_ps=time_ps)
    summary = md_stability(read_structure(structure), settings, workdir)
    typer.echo(stability_table(summary))
    typer.echo(f"wrote {workdir}/stability.json")


@app.command()
@_reports_bad_input
def evaluate(
    model: Annotated[Path, typer.Argument(help="nep.txt")],
    data: Annotated[Path, typer.Argument(help="labelled test structures (extended XYZ)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for JSON and plots")
                      ] = Path("evaluation"),
    min_weight: Annotated[float, typer.Option(
        help="only structures of at least this GPUMD weight (1: the primary reference of a "
             "combined set)")] = 0.0,
    also: Annotated[str | None, typer.Option(
        help="also the errors of this calculator (e.g. sevenn) on the same structures, after "
             "removing a constant energy per element")] = None,
) -> None:
    """Energy, force and stress errors of a NEP model, overall and per family, with plots."""
    from hardcarbon.forcefield.evaluation import (
        dataset_map,
        evaluate_model,
        parity_plots,
        summary,
    )
    from hardcarbon.forcefield.training import load_training_data
    from hardcarbon.storage import write_json

    structures = [a for a in load_training_data(data, "test")
                  if float(a.info.get("weight", 1.0)) >= min_weight]
    if not structures:
        raise InputError(f"no structure in {data} has a weight of at least {min_weight}")
    results = evaluate_model(model, structures)
    parity_plots(results, output)
    dataset_map(model, structures, output / "dataset_map.png")
    write_json(output / "errors.json", summary(results))
    reports = [("NEP", results)]
    if also is not None:
        from hardcarbon.forcefield.evaluation import evaluate_calculator
        from hardcarbon.forcefield.labelling import LabelConfig, reference_calculator

        calc, method = reference_calculator(LabelConfig(calculator=also), structures[0],
                                            output / f"{also}.log")
        other = evaluate_calculator(calc, structures, align_energies=True, name=method)
        write_json(output / f"errors_{also.replace(':', '_')}.json", summary(other))
        reports.append((method, other))
    for label, report in reports:
        typer.echo(label)
        for name, errors in [("overall", report["overall"]), *report["families"].items()]:
            typer.echo(f"{name:>12}: energy {errors['energy_rmse_meV_atom']:.1f} meV/atom  "
                       f"force {errors['force_rmse_meV_A']:.0f} meV/Å  "
                       f"({errors['n_structures']} structures)")
    typer.echo(f"wrote {output}/errors.json and plots")


def main() -> None:
    """Entry point used by ``python -m hardcarbon``."""
    app(prog_name="hardcarbon")


if __name__ == "__main__":
    sys.exit(main())
