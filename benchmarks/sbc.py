"""Simulation-based calibration (Talts et al. 2018) of the shipped specs; writes rank plots.

For each spec: simulate from the prior on a real design, refit, rank the truth among 99
thinned posterior draws, test uniformity per parameter (chi-square over 10 bins) and plot
rank histograms with the 99% band of a uniform histogram.

Run: .venv/bin/python benchmarks/sbc.py [--simulations 100] [--out benchmarks/out/sbc]
"""

import argparse
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from bayescale import datasets  # noqa: E402
from bayescale.errors import ConvergenceWarning  # noqa: E402
from bayescale.simulate import sbc  # noqa: E402

DESIGNS = {"chinchilla": "chinchilla", "kaplan-n": "chinchilla", "compute": "chinchilla",
           "chinchilla-hierarchical": "gadre-overtrain", "skills": "open-llm-leaderboard"}
#: The skills kind is calibrated on the Sloth v2 experiment's design (complete cases of
#: the 6 leaderboard-v2 benchmarks: ~105 models, 18 families), which keeps a refit short.
SKILLS_BENCHMARKS = ["IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO"]


def design_for(spec: str):
    table = datasets.load(DESIGNS[spec]).table
    if spec == "skills":
        from bayescale.evaluate import complete_cases

        table = complete_cases(table, SKILLS_BENCHMARKS)
    return table


def rank_plot(result, title: str, path: Path, bins: int = 10) -> None:
    params = list(result.tests["parameter"])
    cols = 4
    rows = int(np.ceil(len(params) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), params, strict=False):
        ranks = result.ranks.loc[result.ranks["parameter"] == name, "rank"].to_numpy()
        n = len(ranks)
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
        ax.axhspan(lo, hi, color="grey", alpha=0.25, label="99% band (uniform)")
        ax.hist(ranks, bins=np.linspace(0, result.n_ranks, bins + 1), color="C0")
        p = float(result.tests.loc[result.tests["parameter"] == name, "p_value"].iloc[0])
        ax.set_title(f"{name} (p = {p:.2f})", fontsize=9)
        ax.set_xlabel("rank of truth among posterior draws")
        ax.set_ylabel("simulations")
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--simulations", type=int, default=100)
    parser.add_argument("--specs", nargs="*", default=list(DESIGNS))
    parser.add_argument("--out", default="benchmarks/out/sbc")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain per refit")
    parser.add_argument("--tune", type=int, default=1000, help="warm-up steps per refit")
    parser.add_argument("--chains", type=int, default=2, help="chains per refit")
    parser.add_argument("--bins", type=int, default=10,
                        help="bins of the chi-square uniformity test (must divide 100)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", ConvergenceWarning)
    for spec in args.specs:
        t0 = time.perf_counter()
        design = design_for(spec)
        result = sbc(spec, design, n_simulations=args.simulations, seed=2024, n_ranks=100,
                     bins=args.bins, draws=args.draws, tune=args.tune, chains=args.chains,
                     progressbar=True)
        rank_plot(result, f"SBC ranks: {spec} ({args.simulations} simulations)",
                  out / f"{spec}.png", bins=args.bins)
        print(f"{spec}: {args.simulations} simulations ({args.chains} chains x {args.draws}"
              f" + {args.tune} per refit) in {time.perf_counter() - t0:.0f} s; "
              f"min p-value {result.min_p_value:.3f} over {len(result.tests)} parameters; "
              f"passes at Bonferroni 0.01: {result.passed(0.01)}")
        print("   " + ", ".join(f"{r.parameter} {r.p_value:.2f}"
                                for r in result.tests.itertuples()))


if __name__ == "__main__":
    main()
