"""Wall time and peak memory of the Sloth v1 leave-family-out backtest (n = 1, 19 folds).

Usage: ``.venv/bin/python benchmarks/backtest_v1.py [--experiment v1] [--keep-smallest 1]
[--draws 300] [--variant d=3 --variant d=4 ... | --set d=5,ceiling=true] [--out DIR]``.
Acceptance of issue 3: the whole v1 n = 1 backtest in under 15 minutes on 2 cores,
including compilation. With ``--variant`` the time includes choosing the variant (one
PSIS-LOO fit per candidate); ``--set`` times the backtest of one fixed configuration.
Needs ``../shared/data/sloth``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

GROUPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sloth" / "test_groups.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment", default="v1", choices=("v1", "v2", "v1v2"))
    parser.add_argument("--keep-smallest", type=int, default=1)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--spec", default="skills")
    parser.add_argument("--out", default=None)
    parser.add_argument("--variant", action="append", default=[],
                        help="a [skills] variant to choose from by PSIS-LOO (repeatable)")
    parser.add_argument("--set", default=None, metavar="KEY=VALUE[,...]",
                        help="backtest this fixed [skills] variant, with no selection step "
                             "(e.g. the variant a --variant run chose: its selection.csv)")
    args = parser.parse_args()

    from bayescale.evaluate import backtest, parse_variant
    from bayescale.spec import load_spec

    spec = load_spec(args.spec)
    if args.set:
        spec = spec.with_overrides(skills=parse_variant(args.set, option="--set"))
    start = time.perf_counter()
    m = backtest(spec, "open-llm-leaderboard", protocol="leave-family-out",
                 groups=str(GROUPS), experiment=args.experiment,
                 keep_smallest=args.keep_smallest, draws=args.draws, tune=args.tune,
                 chains=args.chains, seed=0, out=args.out, progress=True,
                 variants=[parse_variant(v) for v in args.variant])
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # fits run in spawned worker processes: their peak is the children's, once they ended
    peak_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    keys = ("mae_pp", "mae_pp_cells", "rmse_pp", "coverage", "coverage_rounded",
            "mean_interval_width_90_pp", "crps", "n_folds", "n_models", "n_cells",
            "max_r_hat", "min_ess_bulk", "divergences", "compile_seconds")
    print(json.dumps({k: m[k] for k in keys}, indent=1))
    if m["selection"]:
        print("variant chosen by PSIS-LOO on the training data:",
              next(row["variant"] for row in m["selection"] if row["chosen"]))
    print(f"wall time {wall:.1f} s (target < 900 s for v1 n=1), peak memory {peak:.0f} MB "
          f"(this process), {peak_worker:.0f} MB (largest worker process)")


if __name__ == "__main__":
    main()
