"""nutpie against PyMC's own NUTS and numpyro on the built-in models, measured in one run.

For each (spec, dataset): time to a posterior (wall, including compilation), sampling time,
min bulk ESS, min bulk ESS per second of wall and of sampling, max r-hat and divergences, for
each sampler; then the ratios nutpie / other. Also peak memory of the process.

Run: .venv/bin/python benchmarks/samplers.py [--specs chinchilla ...] [--samplers nutpie pymc]
"""

import argparse
import resource
import time
import warnings

import pandas as pd

from bayescale import fit
from bayescale.errors import ConvergenceWarning

MODELS = {
    "chinchilla": "chinchilla",
    "kaplan-n": "chinchilla",
    "compute": "chinchilla",
    "chinchilla-hierarchical": "gadre-overtrain",
    "skills": "open-llm-leaderboard",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", nargs="*", default=list(MODELS))
    parser.add_argument("--samplers", nargs="*", default=["nutpie", "pymc", "numpyro"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--draws", type=int, default=None, help="draws per chain (default: spec)")
    parser.add_argument("--tune", type=int, default=None, help="warm-up steps (default: spec)")
    parser.add_argument("--chains", type=int, default=None, help="chains (default: spec)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    for spec in args.specs:
        for sampler in args.samplers:
            start = time.perf_counter()
            try:
                post = fit(spec, MODELS[spec], seed=args.seed, sampler=sampler,
                           draws=args.draws, tune=args.tune, chains=args.chains)
            except Exception as err:  # a sampler that cannot run this model is reported
                print(f"{spec:24s} {sampler:8s} FAILED: {type(err).__name__}: {err}",
                      flush=True)
                continue
            wall = time.perf_counter() - start
            d = post.diagnostics
            rows.append({"spec": spec, "sampler": sampler, "wall_s": wall,
                         "sampling_s": d.sampling_seconds, "min_ess_bulk": d.min_ess_bulk,
                         "ess_per_wall_s": d.min_ess_bulk / wall,
                         "ess_per_sampling_s": d.min_ess_bulk / d.sampling_seconds,
                         "max_r_hat": d.max_r_hat, "divergences": d.divergences,
                         "passed": d.passed})
            print(f"{spec:24s} {sampler:8s} wall {wall:7.1f} s"
                  f"  sampling {d.sampling_seconds:7.1f} s  min ESS {d.min_ess_bulk:6.0f}"
                  f"  r-hat {d.max_r_hat:.3f}"
                  f"  div {d.divergences}", flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nratios nutpie / other (ESS per second of sampling; of wall incl. compilation):")
    for spec, group in table.groupby("spec", sort=False):
        ref = group.set_index("sampler")
        if "nutpie" not in ref.index:
            continue
        for other in ref.index.drop("nutpie"):
            sampling = ref.loc["nutpie", "ess_per_sampling_s"] / ref.loc[other,
                                                                         "ess_per_sampling_s"]
            wall = ref.loc["nutpie", "ess_per_wall_s"] / ref.loc[other, "ess_per_wall_s"]
            print(f"  {spec:24s} vs {other:8s}: {sampling:7.1f}x sampling, {wall:7.1f}x wall")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
