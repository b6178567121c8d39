"""Wall time and peak memory of a full skills fit (12 leaderboard benchmarks, all models).

Usage: ``.venv/bin/python benchmarks/skills_fit.py [--d 3] [--draws 1000] [--chains 4]``
(acceptance of issue 3: d = 3, 4 chains x 1000 draws, under 2 minutes on 2 cores,
including compilation and the MAP start).
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--d", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the run directory")
    args = parser.parse_args()

    from bayescale.errors import ConvergenceWarning
    from bayescale.fitting import fit, write_run
    from bayescale.spec import load_spec

    start = time.perf_counter()
    spec = load_spec("skills").with_overrides(skills={"d": args.d})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = fit(spec, "open-llm-leaderboard", draws=args.draws, tune=args.tune,
                   chains=args.chains, seed=args.seed)
    wall = time.perf_counter() - start
    if args.out:
        write_run(post, args.out)
    cells = post.tree["observed_data"].dataset.sizes["cell"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"skills d={args.d}: {post.fit_table['model'].nunique()} models, {cells} cells used")
    print(post.diagnostics.describe())
    print(f"wall time {wall:.1f} s (target < 120 s), peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
