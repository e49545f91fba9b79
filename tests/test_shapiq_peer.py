"""shapiq (the most active Shapley-estimator library; 1.4.1 on Python 3.11) as a test oracle: its exact
Shapley values equal ours and the closed form on games whose values are known."""

import numpy as np
import shapiq
import torch

from shapvision.shapley import MLPGame, exact_shapley


def shapiq_exact(game, n: int) -> np.ndarray:
    def value(coalitions):
        return game(torch.from_numpy(np.asarray(coalitions, dtype=bool))).double().numpy()

    result = shapiq.ExactComputer(n_players=n, game=value)(index="SV", order=1)
    return np.asarray(result.get_n_order_values(1))[:n]


def test_exact_values_agree_on_games_with_a_closed_form():
    """v(S) = sum of weights + c [0 and 1 in S] + d [|S| >= 3] (a symmetric threshold): phi_i = w_i,
    plus c / 2 for players 0 and 1, plus d / n for every player (symmetry and efficiency)."""
    n, c, d = 7, 3.0, 1.4
    weights = torch.linspace(-1.0, 2.0, n, dtype=torch.float64)

    def game(masks):
        m = masks.to(torch.float64)
        return m @ weights + c * (m[:, 0] * m[:, 1]) + d * (m.sum(1) >= 3).to(torch.float64)

    closed_form = weights.clone() + d / n
    closed_form[:2] += c / 2
    ours = exact_shapley(game, n).numpy()
    theirs = shapiq_exact(game, n)
    assert np.allclose(ours, closed_form.numpy(), atol=1e-12)
    assert np.allclose(theirs, closed_form.numpy(), atol=1e-10)


def test_exact_values_agree_on_a_random_mlp_game():
    n = 10
    game = MLPGame(n, 10, generator=torch.Generator().manual_seed(3))
    ours = exact_shapley(game, n)[:, 2].double().numpy()
    theirs = shapiq_exact(lambda m: game(m)[:, 2], n)
    assert np.abs(ours).max() > 1e-3  # a game whose values are not all zero
    assert np.allclose(ours, theirs, atol=1e-6)
