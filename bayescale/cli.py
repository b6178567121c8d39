"""Command-line interface: ``bayescale fit | predict | optimal | datasets | specs``.

User errors (bad data, bad spec, bad run directory) print one line
``bayescale: error: ...`` on stderr and exit with status 1, without a traceback, and
leave no partial output. Ctrl-C and SIGTERM exit with status 130/143 and also leave
no partial output.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from pathlib import Path

from bayescale.errors import BayescaleError, ConvergenceWarning

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


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

    p = sub.add_parser("optimal", help="compute-optimal N*, D* and D/N at a compute budget",
                       description="Compute-optimal parameters, tokens and tokens per "
                                   "parameter (median and 90%% interval) of a loss-law fit.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--flops", required=True, type=_float, nargs="+", metavar="C",
                   help="compute budget(s) in FLOPs, e.g. 5.88e23")
    p.add_argument("--family", help="a training family (default: the population's typical "
                                    "family, or the only family)")
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
    "datasets": _cmd_datasets,
    "specs": _cmd_specs,
}


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    warnings.simplefilter("always", ConvergenceWarning)
    warnings.showwarning = _show_warning
    try:
        return COMMANDS[args.command](args)
    except BayescaleError as exc:
        print(f"bayescale: error: {exc}", file=sys.stderr)
        return 3 if type(exc).__name__ == "ConvergenceError" else EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("bayescale: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, ConvergenceWarning):
        print(f"bayescale: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line),
              file=sys.stderr, end="")


if __name__ == "__main__":
    sys.exit(main())
