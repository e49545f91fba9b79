"""Exact Shapley values: closed forms, axioms and a brute-force permutation average."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shapvision.shapley import MLPGame, PairwiseInteractionGame, exact_shapley


def brute_force_permutation_shapley(value_fn, n):
    """The textbook definition: average marginal contribution over all N! orderings."""
    phi = None
    for order in itertools.permutations(range(n)):
        mask = torch.zeros(1, n, dtype=torch.bool)
        prev = value_fn(mask.clone())[0]
        contrib = torch.zeros((n,) + tuple(prev.shape), dtype=torch.float64)
        for player in order:
            mask[0, player] = True
            cur = value_fn(mask.clone())[0]
            contrib[player] = cur - prev
            prev = cur
        phi = contrib if phi is None else phi + contrib
    return phi / math.factorial(n)


games_params = st.tuples(st.integers(2, 7), st.integers(1, 3), st.integers(0, 2**31 - 1))


@settings(max_examples=25, deadline=None)
@given(games_params)
def test_additive_game_values_are_the_coefficients(params):
    n, k, seed = params
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, k, dtype=torch.float64, generator=g)
    game = PairwiseInteractionGame(a, constant=torch.randn(k, dtype=torch.float64, generator=g))
    torch.testing.assert_close(exact_shapley(game, n), a, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(games_params)
def test_pairwise_interactions_split_evenly(params):
    n, k, seed = params
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, k, dtype=torch.float64, generator=g)
    b = torch.randn(n, n, k, dtype=torch.float64, generator=g)
    game = PairwiseInteractionGame(a, b, constant=1.5)
    expected = a + 0.5 * game.interactions.sum(1)  # phi_i = a_i + 1/2 sum_j B_ij
    torch.testing.assert_close(exact_shapley(game, n), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(exact_shapley(game, n), game.shapley_values(), rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(3, 8), st.integers(0, 2**31 - 1))
def test_symmetric_players_equal_and_dummy_players_zero(n, seed):
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(n, dtype=torch.float64, generator=g)
    weights[1] = weights[0]  # players 0 and 1 are interchangeable
    weights[-1] = 0.0  # the last player never matters

    def game(masks):
        return torch.tanh(masks.double() @ weights) ** 2

    phi = exact_shapley(game, n)
    assert phi[0].item() == pytest.approx(phi[1].item(), abs=1e-12)
    assert phi[-1].item() == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 10), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_efficiency_on_nonlinear_vector_games(n, k, seed):
    game = MLPGame(n, k, generator=torch.Generator().manual_seed(seed))
    phi = exact_shapley(game, n, batch_size=37)
    full = game(torch.ones(1, n, dtype=torch.bool))[0]
    empty = game(torch.zeros(1, n, dtype=torch.bool))[0]
    assert phi.shape == (n, k)
    torch.testing.assert_close(phi.sum(0), full - empty, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_exact_equals_brute_force_permutation_average(n):
    game = MLPGame(n, 2, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(
        exact_shapley(game, n, batch_size=5), brute_force_permutation_shapley(game, n)
    )


def test_scalar_game_returns_vector_and_keeps_dtype():
    game = MLPGame(5, 1, generator=torch.Generator().manual_seed(0))

    def scalar32(masks):
        return game(masks)[:, 0].float()

    phi = exact_shapley(scalar32, 5)
    assert phi.shape == (5,) and phi.dtype == torch.float32


def test_refuses_more_than_24_players_before_evaluating():
    calls = []

    def game(masks):
        calls.append(masks.shape)
        return masks.float().sum(1)

    with pytest.raises(ValueError, match=r"refuses N > 24.*kernel_shap"):
        exact_shapley(game, 25)
    assert calls == []


@pytest.mark.parametrize(
    "bad_output, match",
    [
        (lambda m: m.float().sum(1, keepdim=True).T, r"expected \(\d+,\) or \(\d+, K\)"),
        (lambda m: m.float().unsqueeze(-1).expand(-1, -1, 2), r"expected \(\d+,\) or \(\d+, K\)"),
        (lambda m: m.sum(1), "floating-point"),
        (lambda m: m.float().sum(1).tolist(), "torch.Tensor"),
    ],
)
def test_wrong_value_fn_output_is_a_clear_error(bad_output, match):
    with pytest.raises((ValueError, TypeError), match=match):
        exact_shapley(bad_output, 4)
