"""Prior predictive check of the latent-skills spec on a real design.

Draws parameter sets and scores from the prior of ``models/skills.toml`` on the shipped
leaderboard design (its models, families and observed cells) and compares two summaries
of every simulated table with the real one: the fraction of scores outside
[clip, 1 - clip] (scores the fit would have to clip) and the median over benchmarks of the
across-model sd of scores. A prior is weakly informative when the real values sit inside
the simulated range, not far in its tail.

Run: .venv/bin/python benchmarks/prior_predictive_skills.py [--simulations 40] [--design full]
"""

import argparse

import numpy as np
import pandas as pd

from bayescale import datasets
from bayescale.evaluate import complete_cases
from bayescale.simulate import simulate
from bayescale.spec import load_spec

EXPERIMENTS = {
    "v1": ["MMLU", "ARC", "HellaSwag", "Winogrande", "TruthfulQA", "GSM8K"],
    "v2": ["IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO"],
}


def summaries(scores: np.ndarray, benchmark: pd.Series, clip: float) -> tuple[float, float]:
    """Fraction of scores outside [clip, 1 - clip]; median per-benchmark sd."""
    extreme = float(np.mean((scores < clip) | (scores > 1 - clip)))
    spread = float(pd.Series(scores).groupby(benchmark.to_numpy()).std().median())
    return extreme, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--simulations", type=int, default=40)
    parser.add_argument("--design", default="full", choices=("full", *EXPERIMENTS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    table = datasets.load("open-llm-leaderboard").table
    if args.design != "full":
        table = complete_cases(table, EXPERIMENTS[args.design])
    spec = load_spec("skills")
    clip = float(spec.skills.get("clip", 0.005))
    observed = table.loc[table["score"].notna()]
    real = summaries(observed["score"].to_numpy(float), observed["benchmark"], clip)
    sims = simulate(spec, table, n=args.simulations, seed=args.seed)
    simulated = np.array([summaries(s.observed, observed["benchmark"], clip) for s in sims])
    levels = [0.1, 0.5, 0.9]
    for k, name in enumerate((f"fraction outside [{clip}, {1 - clip}]",
                              "median per-benchmark sd")):
        q = np.quantile(simulated[:, k], levels)
        rank = float(np.mean(simulated[:, k] < real[k]))
        print(f"{name}: real {real[k]:.3f}; prior predictive 10/50/90% "
              f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}; real value's prior quantile {rank:.2f}")
    print(f"({args.simulations} prior draws, {args.design} design: "
          f"{table['model'].nunique()} models, {len(observed)} cells)")


if __name__ == "__main__":
    main()
