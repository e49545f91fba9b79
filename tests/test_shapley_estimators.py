"""Sampling estimators converge to exact values, their std is honest, and bad input fails clearly."""

import math

import pytest
import torch

from shapvision.shapley import (
    MLPGame,
    PairwiseInteractionGame,
    ShapleyKernelSampler,
    additive_efficient_normalization,
    border_sizes,
    enumerate_coalitions,
    exact_shapley,
    kernel_shap,
    permutation_shapley,
    shapley_kernel_gram,
    shapley_kernel_size_probabilities,
    sim_semivalue,
    sim_semivalue_samples,
    sim_semivalue_target,
)


def rmse(a, b):
    return (a - b).pow(2).mean().sqrt().item()


ESTIMATORS = {
    "kernel_shap": lambda game, n, **kw: kernel_shap(game, n, threshold=None, **kw),
    "kernel_shap_unbiased": lambda game, n, **kw: kernel_shap(
        game, n, threshold=None, unbiased=True, **kw
    ),
    "permutation": permutation_shapley,
    "sim_semivalue": sim_semivalue,
}


@pytest.fixture(scope="module", params=[10, 13, 16])
def game_and_truth(request):
    n = request.param
    game = MLPGame(n, num_outputs=3, generator=torch.Generator().manual_seed(n))
    return n, game, exact_shapley(game, n)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_error_falls_with_budget_and_std_covers_it(name, game_and_truth):
    n, game, truth = game_and_truth
    budgets = [256, 1024, 4096]
    errors, stds = [], []
    for budget in budgets:
        runs = [
            ESTIMATORS[name](game, n, max_evals=budget, generator=torch.Generator().manual_seed(s))
            for s in range(6)
        ]
        assert all(r.num_evals <= budget for r in runs)
        errors.append(sum(rmse(r.values, truth) for r in runs) / len(runs))
        stds.append(sum(r.std.pow(2).mean().sqrt().item() for r in runs) / len(runs))
    # Monte Carlo error shrinks like 1/sqrt(budget): x4 budget -> about half the error (or none, where
    # KernelSHAP's border trick enumerates every coalition: N = 10 from 1024 evaluations).
    for before, after in zip(errors, errors[1:], strict=False):
        assert after < 0.8 * before or after < 1e-12, errors
    # The reported standard error is the size of the real error (within a factor of 2); a budget that
    # covers every coalition (N = 10 at 4096: KernelSHAP's border trick enumerates all sizes) is exact.
    for err, std in zip(errors[1:], stds[1:], strict=True):
        if std == 0:
            assert err < 1e-12, (errors, stds)
        else:
            assert 0.5 < err / std < 2.0, (errors, stds)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimates_are_efficient_or_nearly(name, game_and_truth):
    n, game, truth = game_and_truth
    est = ESTIMATORS[name](game, n, max_evals=2048, generator=torch.Generator().manual_seed(0))
    assert est.values.shape == truth.shape == est.std.shape
    tol = 1e-10 if name.startswith("kernel_shap") or name == "permutation" else 0.5
    torch.testing.assert_close(est.values.sum(0), truth.sum(0), rtol=0, atol=tol)


def test_kernel_shap_stops_by_the_covert_lee_rule():
    n = 12
    game = MLPGame(n, 2, generator=torch.Generator().manual_seed(0))
    truth = exact_shapley(game, n)
    est = kernel_shap(game, n, threshold=0.05, generator=torch.Generator().manual_seed(1))
    assert est.converged
    ratio = (est.std.amax(0) / (est.values.amax(0) - est.values.amin(0))).max()
    assert ratio < 0.05
    tighter = kernel_shap(game, n, threshold=0.01, generator=torch.Generator().manual_seed(1))
    assert tighter.converged and tighter.num_evals > est.num_evals
    assert rmse(tighter.values, truth) < rmse(est.values, truth) + 1e-4


def test_kernel_shap_reports_non_convergence_within_budget():
    game = MLPGame(12, 2, generator=torch.Generator().manual_seed(0))
    est = kernel_shap(
        game, 12, threshold=1e-6, max_evals=300, generator=torch.Generator().manual_seed(1)
    )
    assert not est.converged and est.num_evals <= 300


def test_paired_kernel_shap_is_exact_on_second_order_games():
    n = 10
    g = torch.Generator().manual_seed(0)
    game = PairwiseInteractionGame(
        torch.randn(n, dtype=torch.float64, generator=g),
        torch.randn(n, n, dtype=torch.float64, generator=g),
    )
    est = kernel_shap(game, n, threshold=None, max_evals=200, generator=g)
    torch.testing.assert_close(est.values, game.shapley_values(), rtol=0, atol=1e-10)


def test_antithetic_permutations_are_exact_on_additive_games():
    n = 9
    a = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    est = permutation_shapley(
        PairwiseInteractionGame(a), n, max_evals=100, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(est.values, a, rtol=0, atol=1e-12)


def test_border_sizes_enumerate_the_sizes_the_budget_would_cover():
    # N = 16: p(1) = p(15) = 0.161, p(2) = p(14) = 0.0862 (of Z = sum 1 / (k (16 - k))). 2046 evals:
    # 2046 x 0.322 = 659 >= 32 -> sizes 1, 15; then 2014 x 0.172 / 0.678 = 511 >= 240 -> 2, 14; then
    # sizes 3, 13: 1774 x 0.125 / 0.505 = 439 < 1120 -> stop.
    assert border_sizes(16, 2046) == (1, 2, 14, 15)
    assert border_sizes(16, 100) == (1, 15)  # 100 x 0.3214 = 32.1 >= 32
    assert border_sizes(16, 99) == ()  # 99 x 0.3214 = 31.8 < 32
    assert border_sizes(16, 2**16 - 2) == tuple(range(1, 16))
    assert border_sizes(7, 2**7 - 3) == (1, 2, 5, 6)  # one short of every coalition


def test_kernel_shap_with_every_size_enumerated_is_exact():
    n = 9
    game = MLPGame(n, 2, generator=torch.Generator().manual_seed(0))
    for unbiased in (False, True):
        est = kernel_shap(game, n, threshold=None, max_evals=2**n, unbiased=unbiased)
        torch.testing.assert_close(est.values, exact_shapley(game, n), rtol=0, atol=1e-12)
        assert est.num_evals == 2**n and est.converged and (est.std == 0).all()


@pytest.mark.parametrize("unbiased", [False, True])
def test_border_trick_keeps_the_kernel_expectation_and_cuts_the_error(unbiased):
    # Enumerated sizes enter with weight p(k) / C(N, k), sampled ones with their mass: the estimate's
    # mean over seeds is the exact value (a wrong weight biases it), and with repeated draws reused
    # it beats the plain estimator (every size sampled, every draw evaluated) at equal evaluations.
    n = 12
    game = MLPGame(n, 2, generator=torch.Generator().manual_seed(3))
    truth = exact_shapley(game, n)
    assert border_sizes(n, 510) == (1, 2, 10, 11)

    def runs(**options):
        return [
            kernel_shap(
                game,
                n,
                threshold=None,
                max_evals=512,
                unbiased=unbiased,
                generator=torch.Generator().manual_seed(s),
                **options,
            ).values
            for s in range(40)
        ]

    ours, plain = runs(), runs(border=False, reuse_repeats=False)
    mean_error = rmse(torch.stack(ours).mean(0), truth)
    error = sum(rmse(v, truth) for v in ours) / len(ours)
    error_plain = sum(rmse(v, truth) for v in plain) / len(plain)
    assert mean_error < 0.3 * error, (mean_error, error)
    assert error < 0.8 * error_plain, (error, error_plain)


def test_a_coalition_drawn_again_is_not_evaluated_again():
    n = 6  # 62 coalitions of sizes 1..5: draws repeat often
    mlp = MLPGame(n, 3, generator=torch.Generator().manual_seed(0))
    truth = exact_shapley(mlp, n)[:, 0]
    seen = []

    def game(masks):
        seen.extend(map(tuple, masks.tolist()))
        return mlp(masks)[:, 0]

    errors = {True: [], False: []}
    for seed in range(10):
        for reuse in (True, False):
            seen.clear()
            est = kernel_shap(
                game,
                n,
                threshold=None,
                max_evals=40,
                border=False,
                batch_size=8,
                reuse_repeats=reuse,
                generator=torch.Generator().manual_seed(seed),
            )
            assert est.num_evals == len(seen) == 40
            if reuse:
                assert len(set(seen)) == len(seen)  # every evaluated coalition distinct
            errors[reuse].append(rmse(est.values, truth))
    # the repeated draws add information for free
    assert sum(errors[True]) < 0.8 * sum(errors[False]), errors


def test_a_fixed_budget_calls_the_game_once():
    # v(N), v(empty), the enumerated border sizes and every distinct draw go to the game in one call
    # (a small budget's cost is the game's per-call cost); an adaptive run calls it once per batch.
    n = 8
    mlp = MLPGame(n, 3, generator=torch.Generator().manual_seed(0))
    calls = []

    def game(masks):
        calls.append(len(masks))
        return mlp(masks)[:, 0]

    est = kernel_shap(
        game,
        n,
        threshold=None,
        max_evals=100,
        batch_size=100,
        generator=torch.Generator().manual_seed(0),
    )
    assert border_sizes(n, 98) and calls == [100] and est.num_evals == 100
    calls.clear()
    est = kernel_shap(
        game,
        n,
        threshold=1e-9,
        max_evals=100,
        batch_size=20,
        generator=torch.Generator().manual_seed(0),
    )
    assert sum(calls) == est.num_evals and max(calls) <= 20 and len(calls) > 2


def test_shapley_kernel_gram_matches_sampled_second_moment():
    n = 9
    masks = (
        ShapleyKernelSampler(n).sample(200000, generator=torch.Generator().manual_seed(0)).double()
    )
    torch.testing.assert_close(
        masks.T @ masks / masks.shape[0], shapley_kernel_gram(n), rtol=0, atol=5e-3
    )


def test_sim_semivalue_samples_average_exactly_to_shapley_values():
    """Weighting every coalition of sizes 1..N-1 by its kernel probability gives the exact values."""
    n = 8
    game = MLPGame(n, 3, generator=torch.Generator().manual_seed(2))
    truth = exact_shapley(game, n)
    masks = enumerate_coalitions(1, 2**n - 1, n)
    sizes = masks.sum(1)
    size_p = shapley_kernel_size_probabilities(n)
    counts = torch.tensor([math.comb(n, int(k)) for k in range(n + 1)], dtype=torch.float64)
    prob = size_p[sizes] / counts[sizes]
    full, empty = (
        game(torch.ones(1, n, dtype=torch.bool))[0],
        game(torch.zeros(1, n, dtype=torch.bool))[0],
    )
    samples = sim_semivalue_samples(masks, game(masks), full, empty)
    torch.testing.assert_close((prob.view(-1, 1, 1) * samples).sum(0), truth)


def test_sim_semivalue_target_is_the_mean_of_its_samples_and_batches():
    n, m, b = 7, 12, 3
    g = torch.Generator().manual_seed(0)
    masks = ShapleyKernelSampler(n, paired=True).sample(m, batch_size=b, generator=g)
    values = torch.randn(b, m, 4, dtype=torch.float64, generator=g)
    full, empty = (
        torch.randn(b, 4, dtype=torch.float64, generator=g),
        torch.randn(b, 4, dtype=torch.float64, generator=g),
    )
    target = sim_semivalue_target(masks, values, full, empty)
    assert target.shape == (b, n, 4)
    torch.testing.assert_close(target, sim_semivalue_samples(masks, values, full, empty).mean(1))


def test_sim_semivalue_target_rejects_non_bool_masks():
    masks = torch.ones(4, 5, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"torch.bool.*masks.bool\(\)"):
        sim_semivalue_target(masks, torch.zeros(4, 2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(\.\.\., M, K\)"):
        sim_semivalue_target(masks.bool(), torch.zeros(3, 2), torch.zeros(2), torch.zeros(2))


def test_additive_efficient_normalization_projects_onto_efficiency():
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(4, 16, 3, generator=g, dtype=torch.float64)
    v_full, v_empty = (
        torch.randn(4, 3, generator=g, dtype=torch.float64),
        torch.randn(4, 3, generator=g, dtype=torch.float64),
    )
    out = additive_efficient_normalization(phi, v_full, v_empty)
    torch.testing.assert_close(out.sum(1), v_full - v_empty)
    # The shift is the same for every player: the closest efficient point in L2.
    shift = out - phi
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))
    # Already efficient values are left unchanged; 1-D values take scalars.
    torch.testing.assert_close(additive_efficient_normalization(out, v_full, v_empty), out)
    vec = additive_efficient_normalization(
        torch.tensor([1.0, 2.0]), torch.tensor(5.0), torch.tensor(1.0)
    )
    torch.testing.assert_close(vec, torch.tensor([1.5, 2.5]))
    with pytest.raises(ValueError, match="must broadcast"):
        additive_efficient_normalization(phi, torch.zeros(5), torch.zeros(5))


@pytest.mark.parametrize("fn", [kernel_shap, permutation_shapley, sim_semivalue])
def test_budget_too_small_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="max_evals must be an int"):
        fn(lambda m: m.float().sum(1), 10, max_evals=3)
