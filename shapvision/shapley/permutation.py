"""Permutation sampling (Castro et al. 2009) with antithetic permutations.

Each permutation pi yields all N marginal contributions v(pre_i + i) - v(pre_i) from its N + 1
prefixes; the prefixes of length 0 and N are the same for every permutation, so one permutation
costs N - 1 evaluations. Antithetic sampling pairs pi with its reverse (Mitchell et al. 2022),
which cancels the first-order variation of the marginals; a pair counts as one sample.
"""

import torch

from shapvision.shapley.estimate import (
    RunningMoments,
    ShapleyEstimate,
    has_converged,
    validate_budget,
)
from shapvision.shapley.game import GameEvaluator, ValueFunction
from shapvision.shapley.masks import full_and_empty


def permutation_shapley(
    value_fn: ValueFunction,
    num_players: int,
    *,
    antithetic: bool = True,
    threshold: float | None = None,
    max_evals: int = 2**14,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ShapleyEstimate:
    """Permutation-sampling estimate; spends at most ``max_evals`` evaluations (2 + whole permutations of N - 1)."""
    if num_players < 2:
        raise ValueError(
            f"permutation_shapley needs at least 2 players, got num_players={num_players}"
        )
    per_sample = (num_players - 1) * (2 if antithetic else 1)
    validate_budget(
        max_evals, 2 + 2 * per_sample, "permutation_shapley (two samples to estimate a std)"
    )
    device = torch.device(device) if device is not None else torch.device("cpu")
    game = GameEvaluator(value_fn, num_players, batch_size)
    v_full, v_empty = game(full_and_empty(num_players, device)).double()

    samples_per_round = max(1, batch_size // per_sample)
    moments = RunningMoments()
    converged = False
    positions = torch.arange(num_players, device=device)
    while (remaining := (max_evals - game.num_evals) // per_sample) > 0:
        count = min(samples_per_round, remaining)
        order = torch.rand(count, num_players, generator=generator, device=device).argsort(1)
        if antithetic:
            order = torch.stack([order, order.flip(1)], dim=1).flatten(0, 1)
        rank = torch.empty_like(order).scatter_(1, order, positions.expand_as(order))
        # prefix j (1..N-1) of each permutation holds the players ranked below j.
        prefix_lengths = torch.arange(1, num_players, device=device)
        masks = rank.unsqueeze(1) < prefix_lengths.view(1, -1, 1)
        inner = game(masks.flatten(0, 1)).double().view(order.shape[0], num_players - 1, -1)
        prefix_values = torch.cat(
            [v_empty.expand(order.shape[0], 1, -1), inner, v_full.expand(order.shape[0], 1, -1)],
            dim=1,
        )
        marginals = prefix_values.diff(dim=1)
        contributions = torch.gather(marginals, 1, rank.unsqueeze(2).expand_as(marginals))
        if antithetic:
            contributions = contributions.view(count, 2, num_players, -1).mean(1)
        moments.update(contributions)
        values, std = moments.mean, moments.standard_error()
        if threshold is not None and moments.count >= 2 and has_converged(values, std, threshold):
            converged = True
            break
    return ShapleyEstimate(
        game.finalize(moments.mean),
        game.finalize(moments.standard_error()),
        game.num_evals,
        converged,
    )
