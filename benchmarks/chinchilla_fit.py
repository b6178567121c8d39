"""Time the Chinchilla fit plus a prediction, including model compilation.

Run: .venv/bin/python benchmarks/chinchilla_fit.py [--sampler nutpie|pymc|numpyro]
Prints wall time of each stage, the diagnostics and peak memory (RSS).
"""

import argparse
import resource
import time

START = time.perf_counter()

import pandas as pd  # noqa: E402

from bayescale import fit, optimal_allocation, predict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sampler", default="nutpie")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t_import = time.perf_counter() - START
    t0 = time.perf_counter()
    posterior = fit("chinchilla", "chinchilla", seed=args.seed, sampler=args.sampler)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict(posterior, pd.DataFrame({"params": [7e10], "tokens": [1.4e12]}))
    t_pred = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = optimal_allocation(posterior, [5.88e23]).set_index("quantity")
    t_opt = time.perf_counter() - t0
    total = time.perf_counter() - START
    diag = posterior.diagnostics
    print(f"sampler                 {args.sampler}")
    print(f"import                  {t_import:6.1f} s")
    print(f"fit (compile + sample)  {t_fit:6.1f} s   (sampling {diag.sampling_seconds:.1f} s)")
    print(f"predict 1 row           {t_pred:6.1f} s")
    print(f"optimal allocation      {t_opt:6.1f} s")
    print(f"total wall              {total:6.1f} s")
    print(f"peak RSS                {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB")
    print(diag.describe())
    ess_per_s = diag.min_ess_bulk / diag.sampling_seconds
    print(f"min bulk ESS per sampling second: {ess_per_s:.0f}")
    print(f"predicted loss, 70B params x 1.4T tokens: median {pred.loc[0, 'q0.5']:.3f} "
          f"[{pred.loc[0, 'q0.025']:.3f}, {pred.loc[0, 'q0.975']:.3f}]")
    tpp = opt.loc["tokens_per_param"]
    print(f"tokens per parameter at 5.88e23 FLOPs: median {tpp['median']:.1f} "
          f"(90% {tpp['lower']:.1f}-{tpp['upper']:.1f})")


if __name__ == "__main__":
    main()
