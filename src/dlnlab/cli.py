"""Command-line interface: ``dlnlab train | info | list | run | reproduce | report | sweep | bench | analyze``.

It answers at once: this module imports only Typer and :mod:`dlnlab.errors`; each command imports what it uses
when it runs, so ``--help``, ``dlnlab list`` (from :mod:`dlnlab.experiments.index`) and shell completion
(``dlnlab --install-completion``) never import JAX or start a backend (``tests/test_cli.py`` checks it).

Invalid input (config values, overrides, paths) exits with code 2 and a one-line message naming the
field, the value and what is allowed; no traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

# rich_markup_mode=None: help texts are plain text (Rich markup would swallow "[teacher]"-style section names)
app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="dlnlab: learning dynamics of deep linear networks (GF, GD, SGD, SGD-SDE).")


def _fail(exc: Exception) -> None:
    """One line on stderr; exit code 1 for a faulty or busy output (the environment), 2 for bad input."""
    from .errors import OutputError, OutputLockedError

    typer.secho(f"error: {exc}", err=True, fg="red")
    raise typer.Exit(1 if isinstance(exc, (OutputError, OutputLockedError)) else 2)


def _run_or_fail(config: Config, out: Path, progress: bool, checkpoint_every: float = 60.0):
    """``run_config`` with the input errors that surface only once a run starts (an unreadable
    ``init.path``, an ``--out`` that is a file, a checkpoint of another config in ``--out``) reported as
    one line with exit code 2."""
    from .errors import DlnlabError

    if out.exists() and not out.is_dir():
        _fail(ConfigError("--out", str(out), "a directory (this path is an existing file)"))
    try:
        return run_config(config, out, progress, checkpoint_every)
    except DlnlabError as exc:
        _fail(exc)


def _default_out(prefix: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("dlnlab-runs") / f"{prefix}-{stamp}"


@contextlib.contextmanager
def _writer(out: Path):
    """The one writer of ``out`` (a second one is refused, naming this process), with a faulty output (disk full,
    permission denied, read-only, vanished) reported as one line, exit code 1 (:func:`dlnlab.storage.writer`)."""
    from .errors import OutputError, OutputLockedError
    from .storage import writer

    try:
        with writer(out):
            yield
    except (OutputError, OutputLockedError) as exc:
        _fail(exc)


#: Checkpoint of an unfinished ``dlnlab train`` run, in its output directory.
CHECKPOINT = "checkpoint.npz"


def run_config(config: Config, out: Path, progress: bool = True, checkpoint_every: float = 60.0):
    """Simulate ``config`` and write ``out/dataset.zarr`` and ``out/config.toml``; return ``(out, dataset)``.

    While it runs, ``out/checkpoint.npz`` is rewritten (atomically) at most every ``checkpoint_every``
    seconds; if it exists at the start (a killed run of the same config) the run resumes from it. It is
    removed once the dataset is saved. If saving the dataset fails (disk full, …) it is kept in the user's temp
    dir (:func:`dlnlab.storage.save_or_keep`, named in the error) and the next run of the same config saves it
    from there instead of recomputing."""
    from . import checkpoint, storage
    from .config import config_to_toml
    from .engines import simulate
    from .errors import Interrupted

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(config_to_toml(config))
    ckpt = out / CHECKPOINT
    done = checkpoint.peek(ckpt)
    if done is not None:
        typer.secho(f"resuming from {ckpt} ({done} chunks done)", err=True, fg="yellow")
    key, kept = config_to_toml(config), storage.kept_result(config_to_toml(config))
    try:
        if kept is not None:  # computed by an earlier run of this config whose write failed
            typer.secho(f"saving the result kept in {kept} by an earlier run (not recomputed)", err=True, fg="yellow")
            ds = storage.load(kept)
        else:
            ds = simulate(config, progress=progress, checkpoint=ckpt, checkpoint_every=checkpoint_every)
    except Interrupted as exc:  # keep every completed record
        storage.save(exc.partial, out / "dataset.zarr")
        typer.secho(f"interrupted: the {exc.partial.sizes['t']} records completed so far are in "
                    f"{out}/dataset.zarr (attrs['complete'] = 0); rerun the same command to resume",
                    err=True, fg="yellow")
        raise typer.Exit(130) from None
    storage.save_or_keep(ds, out / "dataset.zarr", key)  # where that fails: kept elsewhere, named in the error
    storage.discard_kept(key)
    checkpoint.remove(ckpt)
    return out, ds


def _summary(ds) -> str:
    lines = [f"replicas: {ds.sizes['replica']}   record times: {ds.sizes['t']}   t_max: {float(ds.t[-1]):.4g}",
             f"wall time: {ds.attrs['wall_time_s']:.1f} s   diverged replicas: {ds.attrs['n_diverged']}"]
    if "loss" in ds:
        final = ds["loss"].isel(t=-1)
        lines.append(f"final population loss: mean {float(final.mean()):.4g}  (min {float(final.min()):.4g}, "
                     f"max {float(final.max()):.4g})")
    if "mode_strength" in ds:
        m = ds["mode_strength"].isel(t=-1).mean("replica").values
        k = int((ds["s"] > 0).sum()) or len(m)
        lines.append("final mode strengths (mean): " + ", ".join(f"{x:.4g}" for x in m[:k])
                     + "   teacher s: " + ", ".join(f"{x:.4g}" for x in ds["s"].values[:k]))
    return "\n".join(lines)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="TOML config file")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. --set dynamics.lr=0.02")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    checkpoint_every: Annotated[float, typer.Option(
        "--checkpoint-every", help="seconds between checkpoints (OUT/checkpoint.npz; 0: after every chunk)")] = 60.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the resolved config, replicas × steps × records "
                                                            "and estimates of memory and time; run nothing")] = False,
):
    """Run one ensemble of any simulator (the config's model section: [teacher]/[network]/[init], [modes],
    [diagonal] or [relu]); write OUT/dataset.zarr and OUT/config.toml (the resolved config).

    The run checkpoints into OUT; rerun the same command after a crash or kill to resume (the result is
    identical to an uninterrupted run)."""
    from .config import load_config

    try:
        if not (checkpoint_every >= 0 and checkpoint_every < float("inf")):
            raise ConfigError("--checkpoint-every", checkpoint_every, "a finite number of seconds >= 0")
        cfg = load_config(config, set_ or [])
    except ConfigError as exc:
        _fail(exc)
    if dry_run:
        from .engines.dryrun import estimate_run

        typer.echo("\n".join(estimate_run(cfg).lines()))
        return
    out = out or _default_out("train")
    if out.exists() and not out.is_dir():  # bad input (exit 2), before the writer's lock tries to create it
        _fail(ConfigError("--out", str(out), "a directory (this path is an existing file)"))
    with _writer(out):
        out, ds = _run_or_fail(cfg, out, progress, checkpoint_every)
    typer.echo(_summary(ds))
    typer.echo(f"results: {out}/dataset.zarr  (load with dlnlab.load('{out}/dataset.zarr'))")


@app.command()
def info():
    """Print versions, JAX backend, devices and precision."""
    import jax

    from . import conventions  # noqa: F401  (the JAX set-up a run gets: float64)
    from .runtime import package_versions

    for k, v in package_versions().items():
        typer.echo(f"{k:>8}: {v}")
    typer.echo(f" backend: {jax.default_backend()}")
    typer.echo(f" devices: {', '.join(str(d) for d in jax.devices())}")
    typer.echo(f"   float: {'float64 (x64 enabled)' if jax.config.jax_enable_x64 else 'float32'}")


@app.command("list")
def list_():
    """List the registered experiments (plugins included): name, paper, claim, cost of the quick preset."""
    from .experiments.index import index

    idx = index()
    for e in idx.experiments:
        typer.echo(f"{e.name:<22} [{e.paper}] {e.cost:>8}  {e.claim}" + (f"  (plugin {e.plugin})" if e.plugin else ""))
    plugin_papers = {e.paper for e in idx.experiments if e.plugin}
    for key in sorted(plugin_papers):
        typer.echo(f"[{key}] {idx.papers.get(key, '?')}")


def _complete_experiment(incomplete: str) -> list[str]:
    from .experiments.index import index

    return [e.name for e in index().experiments if e.name.startswith(incomplete)]


def _complete_paper(incomplete: str) -> list[tuple[str, str]]:
    from .experiments.index import index

    return [(k, v[:60]) for k, v in index().papers.items() if k.startswith(incomplete)]  # short: zsh wraps lines


def _experiment_or_fail(name):
    from .experiments import get

    try:
        return get(name)
    except ConfigError as exc:
        _fail(exc)


def _preset(quick: bool, smoke: bool) -> str:
    return "smoke" if smoke else "quick" if quick else "full"


SMOKE_HELP = "the reduced preset the tests use (overrides --quick/--full)"
SEED_HELP = "add K to every experiment's seed parameter (another independent draw)"


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="experiment name (see dlnlab list)", autocompletion=_complete_experiment)],
    quick: Annotated[bool, typer.Option("--quick/--full", help="quick (default) or full preset")] = True,
    smoke: Annotated[bool, typer.Option("--smoke", help=SMOKE_HELP)] = False,
    seed: Annotated[int, typer.Option("--seed", metavar="K", help=SEED_HELP)] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a preset parameter, e.g. --set replicas=64")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
):
    """Run one experiment: data, figures, claims (claims.csv, result.json). The same command after a crash or
    interrupt reuses the simulations the first had completed (kept in OUT/.runs until the experiment finishes)."""
    from .reproduce import resuming

    exp = _experiment_or_fail(name)
    preset = _preset(quick, smoke)
    try:
        exp.params(preset, set_ or [], seed)
    except ConfigError as exc:
        _fail(exc)
    out = out or _default_out(name)
    with _writer(out), resuming(out / ".runs"):  # a rerun after a crash takes the simulations it had completed
        res = exp.run(preset, out, set_ or [], seed)
    for c in res.claims:
        kind = getattr(c, "kind", "old row")
        typer.echo(f"[{c.verdict:>12}] {kind:<8} {c.quantity}: theory {c.theory:.4g}, "
                   f"simulation {c.value:.4g} ± {c.uncertainty:.2g}")
    typer.echo(f"results: {out}")


@app.command()
def reproduce(
    quick: Annotated[bool, typer.Option("--quick/--full", help="reduced statistics (default) or full")] = True,
    smoke: Annotated[bool, typer.Option("--smoke", help=SMOKE_HELP)] = False,
    seed: Annotated[int, typer.Option("--seed", metavar="K", help=SEED_HELP)] = 0,
    paper: Annotated[list[str] | None, typer.Option("--paper", help="only this paper (J, C, Z, S, or a plugin's; see "
                                                    "dlnlab list); repeatable", autocompletion=_complete_paper)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (rerun the same to resume)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="change one experiment's preset, e.g. --set mode_agreement.replicas=4000; repeatable")] = None,
    jobs: Annotated[int, typer.Option("--jobs", metavar="N", min=0, help="experiments run at once, each in its own "
                                      "process; 0: one per usable core, 1: in this process")] = 0,
):
    """Run every registered experiment, write the claims table and the HTML report. Rerunning with the
    same --out resumes: finished experiments are not recomputed, an unfinished one reuses the simulations it had
    completed."""
    from .experiments.index import index

    papers = index().papers
    for p in paper or []:
        if p not in papers:
            _fail(ConfigError("--paper", p, "one of " + ", ".join(papers)))
    from .experiments.table import summary
    from .reproduce import reproduce as run_all
    from .reproduce import split_overrides
    from .runtime import usable_cores

    preset = _preset(quick, smoke)
    out = out or Path("dlnlab-runs") / f"reproduce-{preset}{f'-seed{seed}' if seed else ''}"
    try:
        with _writer(out):
            results = run_all(out, preset, papers=paper or None, overrides=split_overrides(set_), seed=seed,
                              jobs=jobs or usable_cores())
    except ConfigError as exc:
        _fail(exc)
    typer.echo(f"{len(results)} experiments. {summary([c for r in results for c in r.claims])}")
    typer.echo(f"claims table: {out}/claims.csv\nreport:       {out}/report.html")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a reproduce output directory")]):
    """(Re)write RUN_DIR/report.html from the results in RUN_DIR."""
    from .report import write_report

    if not (run_dir / "experiments").is_dir():
        _fail(ConfigError("RUN_DIR", str(run_dir), "a directory written by dlnlab reproduce (with experiments/)"))
    typer.echo(f"report: {write_report(run_dir)}")


def _print_sweep_status(directory: Path) -> dict:
    from .sweep import sweep_status

    st = sweep_status(directory)
    c = st["counts"]
    typer.echo(f"sweep {st['out']}: {st['n_runs']} runs in {st['n_jobs']} jobs — done {c['done']}, "
               f"started {c['started']}, pending {c['pending']}, failed {c['failed']}")
    if st["vectorised"]:
        typer.echo("vectorised on the replica axis: " + ", ".join(st["vectorised"]))
    for r in st["runs"]:
        point = " ".join(f"{k}={v}" for k, v in r["point"].items()) or "(base config)"
        line = f"{r['id']}  {r['status']:<8} {point}"
        if r["error"]:
            line += f"  error: {r['error'].splitlines()[0][:200]}"
        typer.echo(line)
    return st


@app.command()
def sweep(
    config: Annotated[str, typer.Argument(help="TOML config file (the base of every run), or 'status'", metavar="CONFIG|status")],
    directory: Annotated[Path | None, typer.Argument(help="with 'status': the sweep directory")] = None,
    grid: Annotated[list[str] | None, typer.Option("--grid", help="key=v1,v2,... (repeatable), e.g. --grid dynamics.lr=0.01,0.02")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override the base config, e.g. --set ensemble.replicas=64")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (process pool) | dask | slurm | serial")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Dask scheduler, e.g. tcp://HOST:8786 (default: start a local cluster)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output directory (rerun into it to resume)")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="local pool / local Dask cluster size")] = None,
    retries: Annotated[int, typer.Option("--retries", help="retries of a job whose worker died")] = 3,
    slurm: Annotated[list[str] | None, typer.Option("--slurm", help="submitit/SLURM parameter, e.g. --slurm partition=gpu --slurm timeout_min=120")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
):
    """Run CONFIG over a grid of values: one dataset per run and OUT/results.parquet (a row per grid point).
    Grid axes over dynamics.lr, teacher.label_noise, init.scale, init.gamma are vectorised on the replica axis
    of one run; the others make separate runs. `dlnlab sweep status DIR` shows a sweep's progress."""
    from .config import load_config, parse_override
    from .sweep import check_grid
    from .sweep import sweep as run_sweep

    if config == "status":
        if directory is None:
            _fail(ConfigError("DIR", None, "a sweep directory: dlnlab sweep status DIR"))
        try:
            _print_sweep_status(directory)
        except ConfigError as exc:
            _fail(exc)
        return
    if directory is not None:
        _fail(ConfigError("DIR", str(directory), "given only with 'status' (dlnlab sweep status DIR)"))
    try:
        if retries < 0:
            raise ConfigError("--retries", retries, "an integer >= 0")
        if workers is not None and workers < 1:
            raise ConfigError("--workers", workers, "an integer >= 1")
        cfg = load_config(config, set_ or [])
        grid_ = check_grid(grid or [])
        slurm_params = {}
        for item in slurm or []:
            if "=" not in item or not item.split("=", 1)[0].strip():
                raise ConfigError("--slurm", item, "key=value, e.g. partition=gpu")
            key, raw = item.split("=", 1)
            slurm_params[key.strip()] = parse_override(f"x.v={raw}")[1]
        out = out or _default_out("sweep")
        with _writer(out):
            res = run_sweep(cfg, grid_, executor=executor, address=address, out=out, max_workers=workers,
                            retries=retries, slurm=slurm_params or None, progress=progress)
    except ConfigError as exc:
        _fail(exc)
    typer.echo(f"{len(res.status)} runs: {res.n_done} done ({len(res.skipped)} already done, "
               f"{len(res.executed)} run now), {len(res.failed)} failed")
    for rid, err in res.failed.items():
        typer.secho(f"failed {rid}: {err.splitlines()[0][:300] if err else ''}", err=True, fg="red")
    typer.echo(f"results: {res.out}/results.parquet  (one row per grid point; runs in {res.out}/runs/ID/dataset.zarr)")
    if res.failed:
        raise typer.Exit(1)


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="smaller sizes that still give the ratios (B6 not run)")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="write every figure, the machine and versions as JSON")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="run only this workload (B1 … B9); repeatable")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="also print the README's table of these results")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, or gpu: B1, B2, B3, B8 on a CUDA device "
                                                         "(says so and exits 0 without one)")] = "cpu",
):
    """Benchmark dlnlab against PyTorch, NumPy and diffrax (B1-B9); print a table, optionally write JSON (and, with
    B8, its scaling figure beside it: OUT-scaling.png)."""
    from .bench import WORKLOADS, format_table, gpu_devices, markdown_table, run_suite, write_json

    for w in only or []:
        if w not in WORKLOADS:
            _fail(ConfigError("--only", w, "one of " + ", ".join(WORKLOADS)))
    if device not in ("cpu", "gpu"):
        _fail(ConfigError("--device", device, "cpu or gpu"))
    if device == "gpu" and not gpu_devices():
        typer.echo("no GPU: JAX sees no CUDA device (install a CUDA jaxlib: pip install 'dlnlab[gpu]'); nothing run")
        raise typer.Exit(0)
    result = run_suite("quick" if quick else "full", only=only or None,
                       log=lambda msg: typer.echo(msg, err=True), device=device)
    m = result["machine"]
    typer.echo(f"machine: {m['cpu']}, {m['cores_usable']} cores, {m['memory_gib']} GiB, backend {m['backend']}, "
               f"load {m['load_average']} -> {m['load_average_end']}")
    typer.echo(format_table(result))
    if markdown:
        typer.echo("\n" + markdown_table(result))
    if out is not None:
        typer.echo(f"results: {write_json(result, out)}")
        if result["workloads"].get("B8", {}).get("status") == "ok":
            from .bench import scaling_figure

            png = scaling_figure(result["workloads"]["B8"], out.parent, f"{out.stem}-scaling")
            typer.echo(f"B8 scaling figure: {out.parent / png} (and .pdf)")


@app.command()
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="a run directory holding dataset.zarr (from dlnlab train)")],
    threshold: Annotated[float | None, typer.Option(help="rank threshold on the singular values of W "
                                                         "(default: half the smallest learned one)")] = None,
):
    """Saddle/plateau analysis of a run: segment every replica into plateaus and jumps, write
    RUN_DIR/plateaus.csv (one row per replica and plateau) and print a summary."""
    from .analysis import plateau_table, summarize_plateaus
    from .storage import CorruptDatasetError, load

    store = run_dir / "dataset.zarr"
    if not run_dir.is_dir():
        _fail(ConfigError("RUN_DIR", str(run_dir), "an existing run directory"))
    if not store.exists():
        _fail(ConfigError("RUN_DIR", str(run_dir), "a run directory containing dataset.zarr (from dlnlab train)"))
    if threshold is not None and not threshold > 0:
        _fail(ConfigError("--threshold", threshold, "a number > 0"))
    try:
        ds = load(store)
    except CorruptDatasetError as exc:
        _fail(exc)
    except Exception as exc:  # noqa: BLE001 - any unreadable store is bad input, not a crash
        _fail(ConfigError("RUN_DIR", str(store), f"a readable zarr dataset ({type(exc).__name__}: {exc})"))
    try:
        table = plateau_table(ds, threshold=threshold)
    except ConfigError as exc:  # the dataset lacks what the analysis needs: say what it needs
        _fail(ConfigError("RUN_DIR", str(store), exc.allowed))
    except ValueError as exc:
        _fail(ConfigError("RUN_DIR", str(store), str(exc)))
    table.to_csv(run_dir / "plateaus.csv", index=False)
    summary = summarize_plateaus(table)
    n = len(summary)
    typer.echo(f"{n} replicas, {len(table)} plateaus; jumps per replica: "
               + (f"{summary.n_jumps.min()}–{summary.n_jumps.max()}" if n else "none"))
    for _, row in summary.head(20).iterrows():
        line = (f"replica {row.replica}: {row.n_jumps} jumps, first escape t={row.escape_time:.4g}, "
                f"plateau losses {row.plateau_losses}, final rank {row.final_rank}")
        if row.learned_modes:
            line += f", modes learned {row.learned_modes}"
        if row.min_escape_cos == row.min_escape_cos:  # not NaN
            line += f", min |cos(escape, residual)| {row.min_escape_cos:.4f}"
        typer.echo(line)
    if n > 20:
        typer.echo(f"… {n - 20} more replicas in the table")
    typer.echo(f"table: {run_dir / 'plateaus.csv'}")


def main():
    try:
        app()
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="yellow")
        sys.exit(130)


if __name__ == "__main__":
    main()
