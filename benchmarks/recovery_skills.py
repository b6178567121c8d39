"""Parameter recovery for the latent-skills kind on data simulated from the spec itself.

Draws parameter sets from the prior of ``models/skills.toml``, simulates scores on a
real design (the models, families and observed cells of the shipped leaderboard table,
or of one Sloth experiment's complete cases), refits each data set (compiled once, a
pilot start per refit, as in a fit) and prints the fraction of true parameters inside
their central 90% posterior intervals (nominal 0.90), overall and per parameter group, with the
refits' convergence.

Run: .venv/bin/python benchmarks/recovery_skills.py [--simulations 10] [--design v2]
[--variant d=4,ceiling=true]
"""

import argparse
import time
import warnings

import numpy as np

from bayescale import datasets
from bayescale.errors import ConvergenceWarning
from bayescale.evaluate import complete_cases, parse_variant
from bayescale.simulate import parameter_recovery, simulate
from bayescale.spec import load_spec

EXPERIMENTS = {
    "v1": ["MMLU", "ARC", "HellaSwag", "Winogrande", "TruthfulQA", "GSM8K"],
    "v2": ["IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--simulations", type=int, default=10)
    parser.add_argument("--design", default="v2", choices=("full", *EXPERIMENTS))
    parser.add_argument("--d", type=int, default=None, help="number of skills (default: spec)")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--variant", default=None,
                        help="[skills] overrides of the spec, e.g. d=4,ceiling=true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    table = datasets.load("open-llm-leaderboard").table
    if args.design != "full":
        table = complete_cases(table, EXPERIMENTS[args.design])
    spec = load_spec("skills")
    if args.d is not None:
        spec = spec.with_overrides(skills={"d": args.d})
    if args.variant:
        spec = spec.with_overrides(skills=parse_variant(args.variant))
    t0 = time.perf_counter()
    result = parameter_recovery(spec, table, n_simulations=args.simulations, seed=args.seed,
                                draws=args.draws, tune=args.tune, chains=args.chains,
                                progressbar=True)
    group = result["parameter"].str.replace(r"\[.*\]", "", regex=True)
    per_group = result.groupby(group)["inside"].agg(["mean", "size"])
    per_sim = result.groupby("simulation")[["max_r_hat", "divergences"]].first()
    print(f"skills {dict(spec.skills)} on the {args.design} design "
          f"({table['model'].nunique()} models, {table['score'].notna().sum()} cells): "
          f"{args.simulations} simulations, {len(result)} parameter checks, fraction inside "
          f"90% intervals {result['inside'].mean():.3f} (nominal 0.90); "
          f"{time.perf_counter() - t0:.0f} s")
    print("per parameter: " + ", ".join(f"{k} {v['mean']:.2f} ({v['size']:.0f})"
                                         for k, v in per_group.iterrows()))
    # the likelihood is censored at clip and 1 - clip, like the simulation: show how much
    # of each simulated table is censored, and the recovery in light and heavy tables
    clip = float(spec.skills.get("clip", 0.005))
    sims = simulate(spec, table, n=args.simulations, seed=args.seed)
    censored = {i: float(np.mean((s.observed <= clip) | (s.observed >= 1 - clip)))
                for i, s in enumerate(sims)}
    light = result["simulation"].map(censored) <= 0.05
    n_light = sum(v <= 0.05 for v in censored.values())
    print(f"censored cells per simulation: median {np.median(list(censored.values())):.3f}, "
          f"max {max(censored.values()):.3f}; fraction inside 90% intervals "
          f"{result.loc[light, 'inside'].mean():.3f} in the {n_light} "
          f"simulations with <= 5% censored, "
          f"{result.loc[~light, 'inside'].mean():.3f} in the others")
    print(f"refits: max r-hat median {per_sim['max_r_hat'].median():.3f}, worst "
          f"{per_sim['max_r_hat'].max():.3f}; divergences {int(per_sim['divergences'].sum())}")


if __name__ == "__main__":
    main()
