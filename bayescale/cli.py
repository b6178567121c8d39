"""Command-line interface: ``bayescale fit | predict | optimal | report | compare-families | ...``.

Subcommands: fit, predict, optimal, report, compare-families, datasets, specs.

User errors (bad data, bad spec, bad run directory) print one line
``bayescale: error: ...`` on stderr and exit with status 1, without a traceback, and
leave no partial output. Ctrl-C and SIGTERM exit with status 130 and also leave no
partial output, within :data:`bayescale.interrupts.GRACE_SECONDS` at most.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.interrupts import (
    EXIT_INTERRUPTED,
    INTERRUPTED_MESSAGE,
    RECEIVED_SIGNALS,
    exit_interrupted,
    install_handlers,
)

EXIT_USER_ERROR = 1


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayescale",
        description="Bayesian scaling-law inference: hierarchical loss laws and latent-skill "
                    "benchmark models fit with NUTS.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("fit", help="fit a model spec to data and write a run directory",
                       description="Fit SPEC to DATA with NUTS and write RUN_DIR/posterior.nc, "
                                   "summary.csv and diagnostics.json.")
    p.add_argument("spec", metavar="SPEC", help="shipped spec name (see 'bayescale specs') or "
                                                "path to a TOML spec")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="shipped dataset name (see 'bayescale datasets') or a CSV/parquet path")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--draws", type=int, help="draws per chain (default: from the spec)")
    p.add_argument("--tune", type=int, help="warm-up steps per chain (default: from the spec)")
    p.add_argument("--chains", type=int, help="number of chains (default: from the spec)")
    p.add_argument("--target-accept", type=float, help="NUTS target acceptance rate")
    p.add_argument("--seed", type=int, help="random seed (default: from the spec)")
    p.add_argument("--sampler", choices=("nutpie", "pymc", "numpyro"),
                   help="NUTS implementation (default: from the spec, nutpie)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 (and write nothing) if the diagnostics fail")
    p.add_argument("--plot", action="store_true",
                   help="also write RUN_DIR/extrapolation.png (loss laws)")
    _progress_flags(p)

    p = sub.add_parser("predict", help="posterior predictive for new rows",
                       description="Posterior predictive of a new observation (columns mean, "
                                   "sd, q0.025 ... q0.975) and of the mean curve (mu_ prefix) "
                                   "for each row of NEW.csv.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="NEW.csv", help="rows to predict")
    p.add_argument("--out", required=True, metavar="PRED.csv", help="CSV to write")
    p.add_argument("--seed", type=int, help="seed of the predictive draws")
    p.add_argument("--observed", metavar="SCORES.csv",
                   help="first condition the fit on these new observations (e.g. the "
                        "scores of a new family's smallest models: the fit is re-run on "
                        "its data plus these), then predict")

    p = sub.add_parser("optimal", help="compute-optimal N*, D* and D/N at a compute budget",
                       description="Compute-optimal parameters, tokens and tokens per "
                                   "parameter (median and 90%% interval) of a loss-law fit.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--flops", required=True, type=_float, nargs="+", metavar="C",
                   help="compute budget(s) in FLOPs, e.g. 5.88e23")
    p.add_argument("--family", help="a training family (default: the population's typical "
                                    "family, or the only family)")
    p.add_argument("--out", metavar="TABLE.csv", help="also write the table as CSV")

    p = sub.add_parser("report", help="write an HTML report (and a Markdown twin) of a fit",
                       description="Write a self-contained HTML report of RUN_DIR (spec, data, "
                                   "diagnostics, parameters, prior vs posterior, predictive "
                                   "check, extrapolation, allocation, family efficiency, and "
                                   "with --backtest calibration) and a Markdown twin beside it "
                                   "whose images are PNG files in <stem>_files/.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--backtest", metavar="DIR",
                   help="backtest directory with predictions.csv (and metrics.json)")
    p.add_argument("--out", metavar="REPORT.html",
                   help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--no-markdown", dest="markdown", action="store_false",
                   help="write only the HTML file")

    p = sub.add_parser("compare-families", help="effective-compute multipliers of families",
                       description="Effective-compute multiplier of every family relative to "
                                   "a reference family (median and 90%% interval; per skill "
                                   "for skills models), and the probabilities that family A "
                                   "is more efficient than family B.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--reference", metavar="FAMILY",
                   help="reference family (default: the family with the most runs/models)")
    p.add_argument("--at", type=_float, metavar="C",
                   help="compute in FLOPs at which to compare (default: the largest training "
                        "run for loss laws, the median training compute for skills)")
    p.add_argument("--out", metavar="TABLE.csv",
                   help="write the table, and the pairwise probabilities to "
                        "TABLE_probabilities.csv")

    p = sub.add_parser("backtest", help="held-out-model backtest of a skills model",
                       description="Backtest SPEC on DATA under a protocol and write "
                                   "OUT/predictions.csv (one row per held-out cell) and "
                                   "OUT/metrics.json (MAE, RMSE, interval coverage, CRPS).")
    p.add_argument("spec", metavar="SPEC", help="shipped spec name or path to a TOML spec")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="shipped dataset name or a CSV/parquet path (benchmark table)")
    p.add_argument("--protocol", required=True,
                   choices=("leave-family-out", "flops-cutoff", "largest-per-family"))
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    p.add_argument("--groups", metavar="FILE.json",
                   help="held-out groups (leave-family-out), e.g. sloth/test_groups.json")
    p.add_argument("--experiment", default="v1", choices=("v1", "v2", "v1v2"),
                   help="benchmark set of the groups file (leave-family-out)")
    p.add_argument("--keep-smallest", type=int, default=1, metavar="N",
                   help="smallest models of a held-out family kept in training")
    p.add_argument("--cutoff", type=_float, default=84e21, metavar="C",
                   help="FLOPs cutoff (flops-cutoff; default 84e21, Llama-2-7B)")
    p.add_argument("--benchmarks", nargs="+", metavar="B",
                   help="restrict to these benchmarks (flops-cutoff, largest-per-family)")
    p.add_argument("--targets", nargs="+", metavar="B",
                   help="flops-cutoff: hold out only these benchmarks of the models above "
                        "the cutoff (their other scores stay in training)")
    p.add_argument("--draws", type=int, default=500, help="draws per chain per fold")
    p.add_argument("--tune", type=int, default=500, help="warm-up steps per chain per fold")
    p.add_argument("--chains", type=int, default=4, help="chains per fold")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--variant", action="append", metavar="KEY=VALUE[,...]",
                   help="a [skills] variant to choose from (repeat: --variant d=2 --variant "
                        "d=3): the one with the best leave-one-model-out PSIS-LOO on the "
                        "data every fold trains on is backtested (OUT/selection.csv)")
    p.add_argument("--set", metavar="KEY=VALUE[,...]",
                   help="[skills] settings of SPEC to backtest as they are, e.g. the variant "
                        "an earlier --variant run chose (its OUT/selection.csv): "
                        "--set d=5,ceiling=true; with --variant, the candidates start "
                        "from these settings")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="local worker processes running folds (and --variant fits) in "
                        "parallel (1: serial; default: one per core, at most one per "
                        "fold); results are the same for any N")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the folds on a Dask cluster instead, e.g. tcp://host:8786 "
                        "(its workers need bayescale installed; --variant fits stay on "
                        "local processes)")
    _progress_flags(p)

    p = sub.add_parser("compare", help="PSIS-LOO table of runs fit to the same data",
                       description="Compare fitted runs of the same data by PSIS-LOO "
                                   "(arviz.compare): law forms, hierarchies, numbers of "
                                   "skills. Skills runs leave out one model (all its scores) "
                                   "at a time, loss-law runs one run.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", metavar="TABLE.csv", help="also write the table as CSV")

    sub.add_parser("datasets", help="list the shipped datasets",
                   description="List the datasets shipped with bayescale.")
    sub.add_parser("specs", help="list the shipped model specs",
                   description="List the model specs in models/.")
    return parser


def _progress_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="show progress bars (default: when stderr is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_false")


def _show_progress(args) -> bool:
    return sys.stderr.isatty() if args.progress is None else args.progress


def _cmd_fit(args) -> int:
    from bayescale.fitting import fit, write_run

    out = Path(args.out)
    posterior = fit(args.spec, args.data, draws=args.draws, tune=args.tune, chains=args.chains,
                    target_accept=args.target_accept, seed=args.seed, sampler=args.sampler,
                    progressbar=_show_progress(args), strict=args.strict)
    figures = {}
    if args.plot and posterior.spec.kind == "loss-law":
        from bayescale.plots import plot_loss_extrapolation

        figures["extrapolation.png"], _ = plot_loss_extrapolation(posterior=posterior)
    write_run(posterior, out, figures=figures)
    summary = posterior.summary()
    diag = posterior.diagnostics
    print(f"fit '{posterior.spec.name}' on {posterior.tree.attrs['data_source']}: "
          f"{len(posterior.fit_table)} rows used, {len(posterior.excluded_table)} excluded")
    print(diag.describe())
    with _pandas_display():
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {out}/: " + ", ".join(["posterior.nc", "summary.csv", "diagnostics.json",
                                          *figures]))
    return 0


def _cmd_predict(args) -> int:
    from bayescale.fitting import load_run
    from bayescale.posterior import write_text_atomic
    from bayescale.prediction import predict

    posterior = load_run(args.run_dir)
    if args.observed:
        from bayescale.fitting import condition_on

        posterior = condition_on(posterior, args.observed)
        print(f"conditioned on {args.observed}: {posterior.diagnostics.describe()}")
    table = predict(posterior, args.data, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, table.to_csv(index=False))
    print(f"wrote {len(table)} predictions to {out}")
    return 0


def _cmd_optimal(args) -> int:
    from bayescale.fitting import load_run
    from bayescale.posterior import write_text_atomic
    from bayescale.prediction import optimal_allocation

    posterior = load_run(args.run_dir)
    table = optimal_allocation(posterior, args.flops, family=args.family, ci_prob=0.9)
    with _pandas_display():
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        write_text_atomic(Path(args.out), table.to_csv(index=False))
    return 0


def _cmd_report(args) -> int:
    from bayescale.report import build_report

    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    report = build_report(args.run_dir, backtest_dir=args.backtest)
    written = report.write(out, markdown=args.markdown)
    for warning in report.warnings:
        print(f"bayescale: warning: report: {warning}", file=sys.stderr)
    print(f"wrote {written['html']} ({len(report.figures)} figures, "
          f"{report.meta['seconds']:.1f} s)")
    if "markdown" in written:
        print(f"wrote {written['markdown']} (images in {written['images']}/)")
    return 0


def _cmd_compare_families(args) -> int:
    from bayescale import compare
    from bayescale.fitting import load_run
    from bayescale.posterior import write_text_atomic

    posterior = load_run(args.run_dir)
    if len(posterior.families) < 2:
        from bayescale.errors import DataError

        raise DataError(f"{args.run_dir}: the fit has one family "
                        f"({posterior.families[0]}); nothing to compare")
    table = compare.family_efficiency(posterior, reference=args.reference, at=args.at)
    probs = compare.prob_table(posterior, at=args.at)
    shown = [c for c in ("family", "skill", "median", "lower", "upper",
                         "p_more_efficient_than_reference", "n_models", "weakly_identified")
             if c in table]
    print(f"effective-compute multiplier relative to {table['reference'].iloc[0]} at "
          f"C = {table['at'].iloc[0]:.4g} FLOPs (median, 90% interval; >1 = more efficient)")
    with _pandas_display():
        print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    weak = sorted(table.loc[table["weakly_identified"], "family"].unique())
    if weak:
        print("weakly identified (one model or run): " + ", ".join(weak))
    skills = list(dict.fromkeys(table["skill"])) if "skill" in table else [None]
    for skill in skills:
        mat = compare.prob_more_efficient(posterior, at=args.at, skill=skill)
        if len(mat) <= 12:
            print("\nP(row more efficient than column)" + (f", {skill}" if skill else ""))
            with _pandas_display():
                print(mat.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        prob_path = out.with_name(f"{out.stem}_probabilities.csv")
        write_text_atomic(out, table.to_csv(index=False))
        write_text_atomic(prob_path, probs.to_csv(index=False))
        print(f"wrote {out} and {prob_path}")
    return 0


def _cmd_backtest(args) -> int:
    from bayescale.evaluate import backtest, parse_variant
    from bayescale.fitting import resolve_spec

    spec = args.spec
    if args.set:
        spec = resolve_spec(spec).with_overrides(skills=parse_variant(args.set,
                                                                      option="--set"))
    m = backtest(spec, args.data, protocol=args.protocol, out=args.out,
                 groups=args.groups, experiment=args.experiment,
                 keep_smallest=args.keep_smallest, cutoff=args.cutoff,
                 benchmarks=args.benchmarks, targets=args.targets, draws=args.draws, tune=args.tune,
                 chains=args.chains, seed=args.seed, progress=_show_progress(args),
                 variants=[parse_variant(v) for v in args.variant or []],
                 workers=args.workers, scheduler=args.scheduler)
    if m["selection"]:
        print("variant chosen by leave-one-model-out PSIS-LOO on the training data: "
              + next(row["variant"] for row in m["selection"] if row["chosen"]))
    cov, covr = m["coverage"], m["coverage_rounded"]
    print(f"backtest '{m['spec']}' ({m['protocol']}): {m['n_folds']} folds, {m['n_cells']} "
          f"held-out cells of {m['n_models']} models, {m['wall_seconds']:.0f} s")
    print(f"MAE {m['mae_pp']:.2f} pp (cells {m['mae_pp_cells']:.2f}), RMSE {m['rmse_pp']:.2f} "
          f"pp, CRPS {m['crps']:.4f}, 90% width {m['mean_interval_width_90_pp']:.1f} pp")
    print("coverage " + ", ".join(f"{k}: {v:.2f}/{covr[k]:.2f}" for k, v in cov.items())
          + " (continuous/rounded draws)")
    expected = m.get("coverage_rounded_expected") or {}
    if expected:
        print("a calibrated model expects rounded coverage "
              + ", ".join(f"{k}: {v:.2f}" for k, v in expected.items())
              + " (interval edges included)")
    name, fold = max(m["folds"].items(), key=lambda item: item[1]["max_r_hat"])
    print(f"worst fold r-hat {m['max_r_hat']:.3f} (fold {name}, {fold['worst_r_hat']}), "
          f"min ESS {m['min_ess_bulk']:.0f}, {m['divergences']} divergences")
    if m["folds_resampled"]:
        print(f"{m['folds_resampled']} fold(s) sampled again after a chain got stuck "
              "(metrics.json folds.*.resampled_stuck_chains)")
    print(f"wrote {args.out}/: predictions.csv, metrics.json")
    return 0


def _cmd_compare(args) -> int:
    from bayescale.evaluate import compare_runs
    from bayescale.posterior import write_text_atomic

    table = compare_runs(args.run_dirs)
    with _pandas_display():
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.out:
        write_text_atomic(Path(args.out), table.to_csv())
    return 0


def _cmd_datasets(_args) -> int:
    from bayescale import datasets

    with _pandas_display():
        print(datasets.list_datasets().to_string(index=False))
    return 0


def _cmd_specs(_args) -> int:
    from bayescale.spec import available_specs, load_spec

    for name in available_specs():
        spec = load_spec(name)
        print(f"{name:28s} {spec.kind:10s} {spec.description}")
    return 0


class _pandas_display:
    def __enter__(self):
        import pandas as pd

        self._ctx = pd.option_context("display.width", 200, "display.max_columns", 50,
                                      "display.max_rows", 500)
        self._ctx.__enter__()

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


COMMANDS = {
    "fit": _cmd_fit,
    "predict": _cmd_predict,
    "optimal": _cmd_optimal,
    "report": _cmd_report,
    "compare-families": _cmd_compare_families,
    "backtest": _cmd_backtest,
    "compare": _cmd_compare,
    "datasets": _cmd_datasets,
    "specs": _cmd_specs,
}


def _unraisable(unraisable) -> None:
    # the KeyboardInterrupt of a signal that arrived inside a C callback cannot propagate;
    # it is recorded in RECEIVED_SIGNALS and acted on later, so no traceback is printed
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    install_handlers()
    sys.unraisablehook = _unraisable
    warnings.simplefilter("always", ConvergenceWarning)
    warnings.showwarning = _show_warning
    try:
        return COMMANDS[args.command](args)
    except BayescaleError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 3 if type(exc).__name__ == "ConvergenceError" else EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        # a signal that arrives inside a library (e.g. numba compiling a kernel) can come
        # out wrapped in that library's own exception; it is still an interruption
        if RECEIVED_SIGNALS:
            print(INTERRUPTED_MESSAGE, file=sys.stderr)
            return EXIT_INTERRUPTED
        raise


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, ConvergenceWarning):
        print(f"bayescale: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line),
              file=sys.stderr, end="")


def entry_point() -> None:
    """Console-script entry: run :func:`main` and exit with its status.

    An interrupted command exits at once (:func:`bayescale.interrupts.exit_interrupted`):
    its outputs are cleaned up by then, and the interpreter's shutdown could wait on a
    sampler's threads.
    """
    status = main()
    if RECEIVED_SIGNALS:
        exit_interrupted(announce=False)
    sys.exit(status)


if __name__ == "__main__":
    entry_point()
