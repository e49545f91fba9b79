"""Shapley core benchmark: exact enumeration time, and estimator error at equal evaluation budgets.

For N = 16 players and a cheap nonlinear game (a random MLP over the mask, 10 softmax outputs), the
exact values come from enumerating all 65,536 coalitions; KernelSHAP (paired, shapreg estimator and
the unbiased variant), antithetic permutation sampling and Sim-Semivalue then each spend the same
number of value-function evaluations (v(N) and v(empty) included) and are scored by RMSE against
exact, averaged over seeds. Run: ``python benchmarks/shapley_core.py`` (or ``make bench``).
"""

import argparse
import platform
import time

import torch

from shapvision.shapley import (
    MLPGame,
    exact_shapley,
    kernel_shap,
    permutation_shapley,
    sim_semivalue,
)

ESTIMATORS = {
    "KernelSHAP (paired)": lambda g, n, b, gen: kernel_shap(
        g, n, max_evals=b, threshold=None, generator=gen
    ),
    "KernelSHAP unbiased": lambda g, n, b, gen: kernel_shap(
        g, n, max_evals=b, threshold=None, unbiased=True, generator=gen
    ),
    "permutation (antithetic)": lambda g, n, b, gen: permutation_shapley(
        g, n, max_evals=b, generator=gen
    ),
    "Sim-Semivalue (paired)": lambda g, n, b, gen: sim_semivalue(g, n, max_evals=b, generator=gen),
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--players", type=int, default=16)
    parser.add_argument("--outputs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--tiny", action="store_true", help="a smoke run in seconds (make test)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.players, args.outputs, args.seeds, args.budgets = 8, 3, 2, [64, 128]
    n = args.players
    game = MLPGame(n, args.outputs, generator=torch.Generator().manual_seed(0))

    start = time.perf_counter()
    truth = exact_shapley(game, n)
    exact_seconds = time.perf_counter() - start
    scale = truth.pow(2).mean().sqrt().item()

    print(
        f"# shapley_core: N={n}, K={args.outputs}, {args.seeds} seeds, torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    print(
        f"exact_shapley: 2^{n} = {2**n} evaluations in {exact_seconds:.3f} s; RMS of exact values = {scale:.4f}"
    )
    print()
    print("RMSE vs exact (relative to RMS of the exact values), mean over seeds:")
    header = "| estimator | " + " | ".join(f"{b} evals" for b in args.budgets) + " |"
    print(header)
    print("|" + "---|" * (len(args.budgets) + 1))
    for name, fn in ESTIMATORS.items():
        cells = []
        for budget in args.budgets:
            errs = []
            for seed in range(args.seeds):
                est = fn(game, n, budget, torch.Generator().manual_seed(seed))
                errs.append((est.values - truth).pow(2).mean().sqrt().item())
            mean_err = sum(errs) / len(errs)
            cells.append(f"{mean_err:.2e} ({mean_err / scale:.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
