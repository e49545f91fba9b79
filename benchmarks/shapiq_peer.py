"""Peer check against shapiq: our exact, KernelSHAP and permutation estimators beside shapiq's exact
computer and approximators (KernelSHAP with its pairing trick, permutation sampling, SVARM and its
regression estimator k-additive SHAP) at equal budgets, on the same games, side by side in one run.

Games (16 players, so exact values are the reference): a random MLP game (``MLPGame``, as
``shapley_core.py``) and, with ``--checkpoint``, the digits demo surrogate's game p(target | x_S) on
``--images`` test images (patches removed by dropping tokens). Per estimator and budget: the RMSE
against the exact values relative to their RMS (mean over games and seeds) and the milliseconds per
estimate (mean over games of the median over seeds). A budget is the number of game evaluations: for
ours ``max_evals``, for shapiq the distinct coalitions it evaluates (empty and grand coalitions
included; its "border trick" enumerates the sizes that fit exactly). shapiq 1.4.1 is the newest that
installs on Python 3.11 (shapiq 1.8 needs 3.12).

    python benchmarks/shapiq_peer.py --checkpoint runs/digits/surrogate/best.ckpt
    python benchmarks/shapiq_peer.py --tiny
"""

import argparse
import statistics
import time

import numpy as np
import shapiq
import torch
from device import device_name
from shapiq.approximator import SVARM, KernelSHAP, PermutationSamplingSV, kADDSHAP

from shapvision.shapley import MLPGame, exact_shapley, kernel_shap, permutation_shapley

OURS = {
    "ours: KernelSHAP (paired)": lambda game, n, budget, seed: (
        kernel_shap(
            game,
            n,
            max_evals=budget,
            threshold=None,
            batch_size=budget,  # one call to the game, as shapiq makes
            generator=torch.Generator().manual_seed(seed),
        ).values
    ),
    "ours: permutation (antithetic)": lambda game, n, budget, seed: (
        permutation_shapley(
            game, n, max_evals=budget, generator=torch.Generator().manual_seed(seed)
        ).values
    ),
}
SHAPIQ = {
    "shapiq: KernelSHAP (pairing)": lambda n, seed: KernelSHAP(
        n, pairing_trick=True, random_state=seed
    ),
    "shapiq: permutation sampling": lambda n, seed: PermutationSamplingSV(n, random_state=seed),
    "shapiq: SVARM": lambda n, seed: SVARM(n, random_state=seed),
    "shapiq: k-additive SHAP (regression)": lambda n, seed: kADDSHAP(
        n, max_order=2, pairing_trick=True, random_state=seed
    ),
}


def as_numpy_game(game):
    """shapiq's game interface (bool array (M, n) -> (M,)) over ours (bool tensor -> (M,) or (M, 1))."""

    def value(coalitions: np.ndarray) -> np.ndarray:
        # shapiq also asks for one coalition as a flat (n,) array
        masks = np.atleast_2d(np.asarray(coalitions, dtype=bool))
        return game(torch.from_numpy(masks)).reshape(len(masks)).double().numpy()

    return value


def shapiq_values(result, n: int) -> torch.Tensor:
    return torch.as_tensor(np.asarray(result.get_n_order_values(1)), dtype=torch.float64)[:n]


def games(args) -> list[tuple[str, object]]:
    n = args.players
    found = [
        (f"MLP game {seed}", scalar(MLPGame(n, 10, generator=torch.Generator().manual_seed(seed))))
        for seed in range(args.mlp_games)
    ]
    if args.checkpoint:
        from shapvision.attribution import ExplainedModel
        from shapvision.attribution.perturbation import TargetGame
        from shapvision.data import DigitsDataModule
        from shapvision.modules.checkpoints import load_module

        module = load_module(args.checkpoint, "--checkpoint")
        model = ExplainedModel(module, args.checkpoint)
        if model.num_patches != n:
            raise SystemExit(
                f"--checkpoint has {model.num_patches} patches; pass --players {model.num_patches}"
            )
        data = DigitsDataModule()
        data.setup("test")
        for i in range(args.images):
            image = data.test_set[i][0]
            with torch.no_grad():
                target = model.logits(image.unsqueeze(0)).argmax(1)[0]
            found.append((f"digits surrogate, test image {i}", TargetGame(model, image, target)))
    return found


def standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")


def scalar(game):
    """The first output of a game with several (an MLP game's class probabilities)."""
    return lambda masks: game(masks)[:, 0]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--players", type=int, default=16)
    parser.add_argument("--mlp-games", type=int, default=3)
    parser.add_argument(
        "--checkpoint", help="the digits surrogate (runs/digits/surrogate/best.ckpt)"
    )
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument(
        "--tiny", action="store_true", help="8 players, 1 MLP game: a smoke run (make test)"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.players, args.mlp_games, args.seeds, args.budgets = 8, 1, 1, [64]
        args.checkpoint = None
    n = args.players
    errors = {name: {b: [] for b in args.budgets} for name in (*OURS, *SHAPIQ)}
    seconds = {name: {b: [] for b in args.budgets} for name in (*OURS, *SHAPIQ)}
    exact_agreement = []
    for _, game in games(args):
        truth = exact_shapley(game, n).double().reshape(n)
        theirs = shapiq.ExactComputer(n_players=n, game=as_numpy_game(game))(index="SV", order=1)
        exact_agreement.append(float((shapiq_values(theirs, n) - truth).abs().max()))
        scale = float(truth.pow(2).mean().sqrt())
        for budget in args.budgets:
            # untimed: the first call of a game at a new batch size pays allocator and kernel warm-up,
            # which would fall on whichever estimator ran first
            game(torch.rand(budget, n, generator=torch.Generator().manual_seed(0)) < 0.5)
            for name, estimate in OURS.items():
                seconds[name][budget].append([])
                for seed in range(args.seeds):
                    start = time.perf_counter()
                    values = estimate(game, n, budget, seed).double().reshape(n)
                    seconds[name][budget][-1].append(time.perf_counter() - start)
                    errors[name][budget].append(
                        float((values - truth).pow(2).mean().sqrt()) / scale
                    )
            for name, make in SHAPIQ.items():
                seconds[name][budget].append([])
                for seed in range(args.seeds):
                    approximator = make(n, seed)
                    start = time.perf_counter()
                    values = shapiq_values(approximator.approximate(budget, as_numpy_game(game)), n)
                    seconds[name][budget][-1].append(time.perf_counter() - start)
                    errors[name][budget].append(
                        float((values - truth).pow(2).mean().sqrt()) / scale
                    )
    print(
        f"# shapiq peer check: {n} players, {len(exact_agreement)} games, {args.seeds} seeds, shapiq "
        f"{getattr(shapiq, '__version__', None) or '1.4.1'}, torch {torch.__version__}, {device_name(torch.device('cpu'))}"
    )
    print(f"exact values, shapiq vs ours: max |difference| = {max(exact_agreement):.2e}")
    print()
    print(
        "rel. RMSE: mean ± standard error over games and seeds; ms: mean over games of the median\n"
        "over seeds (each estimator's seeds back to back, after an untimed call of the game at the\n"
        "budget's batch size)\n"
    )
    print("| estimator | " + " | ".join(f"{b} evals: rel. RMSE / ms" for b in args.budgets) + " |")
    print("|---|" + "---|" * len(args.budgets))
    for name in (*OURS, *SHAPIQ):
        cells = [
            f"{statistics.mean(errors[name][b]):.4f} ± {standard_error(errors[name][b]):.4f} / "
            f"{1000 * statistics.mean(map(statistics.median, seconds[name][b])):.1f}"
            for b in args.budgets
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
