"""Exact Shapley values by enumerating all 2^N coalitions.

phi_i = sum_S v(S) * c_i(S) with c_i(S) = w1(|S|) if i in S and -w0(|S|) otherwise, where
w1(s) = (s-1)!(N-s)!/N! and w0(s) = s!(N-s-1)!/N!. For a batch of coalitions that is a single
matrix product ``C^T V``, so memory stays at one batch while N goes up to 24 (16.8M coalitions).
"""

from math import comb

import torch
from tqdm.auto import tqdm

from shapvision.shapley.game import GameEvaluator, ValueFunction
from shapvision.shapley.masks import enumerate_coalitions

MAX_EXACT_PLAYERS = 24


def shapley_coalition_weights(num_players: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w1, w0) indexed by coalition size 0..N, float64; w1[0] and w0[N] are unused and set to 0."""
    n = num_players
    w1 = torch.tensor(
        [0.0] + [1.0 / (n * comb(n - 1, s - 1)) for s in range(1, n + 1)], dtype=torch.float64
    )
    w0 = torch.tensor([1.0 / (n * comb(n - 1, s)) for s in range(n)] + [0.0], dtype=torch.float64)
    return w1, w0


def exact_shapley(
    value_fn: ValueFunction,
    num_players: int,
    *,
    batch_size: int = 4096,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Exact Shapley values of ``value_fn`` over ``num_players`` players.

    ``value_fn`` maps bool masks ``(M, N)`` (on ``device``) to ``(M,)`` or ``(M, K)``; the result is
    ``(N,)`` or ``(N, K)`` in the value function's dtype (accumulated in float64).
    """
    if not isinstance(num_players, int) or num_players < 1:
        raise ValueError(f"num_players must be a positive int, got {num_players!r}")
    if num_players > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact_shapley enumerates 2^N coalitions and refuses N > {MAX_EXACT_PLAYERS} "
            f"(got N = {num_players}, 2^N = {2**num_players:.3g}); use kernel_shap or permutation_shapley"
        )
    game = GameEvaluator(value_fn, num_players, batch_size)
    device = torch.device(device) if device is not None else torch.device("cpu")
    w1, w0 = (w.to(device) for w in shapley_coalition_weights(num_players))
    total = 2**num_players
    phi = None
    for start in tqdm(
        range(0, total, batch_size), desc="exact Shapley", disable=not progress, unit="batch"
    ):
        masks = enumerate_coalitions(start, min(start + batch_size, total), num_players, device)
        values = game(masks)
        sizes = masks.sum(1)
        coeff = torch.where(masks, w1[sizes].unsqueeze(1), -w0[sizes].unsqueeze(1))
        contribution = coeff.T @ values.double()
        phi = contribution if phi is None else phi + contribution
    return game.finalize(phi)
