"""The Sim-Semivalue estimator of SimSHAP (Zhang et al.): unbiased Shapley values from kernel samples.

With S drawn from the Shapley kernel (sizes 1..N-1) and gamma = sum_{k=1}^{N-1} 1 / (k (N - k)),
    phi_i = gamma * E_S[ v(S) (N 1[i in S] - |S|) ] + (v(N) - v(empty)) / N
holds exactly: the kernel probability of S times gamma (N 1[i in S] - |S|) equals the Shapley weight
of S for player i, and the two coalitions the kernel never draws (empty, full) give the last term.
"""

import torch

from shapvision.shapley.estimate import (
    RunningMoments,
    ShapleyEstimate,
    has_converged,
    validate_budget,
)
from shapvision.shapley.game import GameEvaluator, ValueFunction
from shapvision.shapley.masks import check_masks, full_and_empty
from shapvision.shapley.samplers import ShapleyKernelSampler


def shapley_kernel_normalizer(num_players: int) -> float:
    """gamma = sum_{k=1}^{N-1} 1 / (k (N - k))."""
    return sum(1.0 / (k * (num_players - k)) for k in range(1, num_players))


def _sample_weights(masks: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """gamma (N 1[i in S] - |S|) per mask and player ``(..., M, N)``, after checking masks against values."""
    num_players = masks.shape[-1]
    check_masks(masks, num_players)
    if values.shape[:-1] != masks.shape[:-1]:
        raise ValueError(
            f"values {tuple(values.shape)} must be (..., M, K) for masks {tuple(masks.shape)}"
        )
    size = masks.sum(-1, keepdim=True).to(values.dtype)
    return shapley_kernel_normalizer(num_players) * (num_players * masks.to(values.dtype) - size)


def sim_semivalue_samples(
    masks: torch.Tensor, values: torch.Tensor, v_full: torch.Tensor, v_empty: torch.Tensor
) -> torch.Tensor:
    """One unbiased Shapley estimate per sampled coalition.

    masks ``(..., M, N)`` bool drawn from the Shapley kernel, values ``(..., M, K)`` = v(masks),
    v_full / v_empty ``(..., K)``; returns ``(..., M, N, K)``. Averaging over M gives the estimate.
    """
    weights = _sample_weights(masks, values)
    num_players = masks.shape[-1]
    per_sample = weights.unsqueeze(-1) * values.unsqueeze(-2)
    return per_sample + ((v_full - v_empty) / num_players).unsqueeze(-2).unsqueeze(-3)


def sim_semivalue_target(
    masks: torch.Tensor, values: torch.Tensor, v_full: torch.Tensor, v_empty: torch.Tensor
) -> torch.Tensor:
    """The SimSHAP regression target ``(..., N, K)``: the mean of :func:`sim_semivalue_samples` over masks.

    Computed as one contraction over the masks, without the ``(..., M, N, K)`` intermediate.
    """
    weights = _sample_weights(masks, values)
    num_players, num_masks = masks.shape[-1], masks.shape[-2]
    target = weights.transpose(-1, -2) @ values / num_masks
    return target + ((v_full - v_empty) / num_players).unsqueeze(-2)


def sim_semivalue(
    value_fn: ValueFunction,
    num_players: int,
    *,
    paired: bool = True,
    threshold: float | None = None,
    max_evals: int = 2**14,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ShapleyEstimate:
    """Monte Carlo Sim-Semivalue estimate; ``paired`` averages each mask with its complement into one sample."""
    validate_budget(max_evals, 6 if paired else 4, "sim_semivalue (two samples to estimate a std)")
    if num_players < 2:
        raise ValueError(f"sim_semivalue needs at least 2 players, got num_players={num_players}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    game = GameEvaluator(value_fn, num_players, batch_size)
    sampler = ShapleyKernelSampler(num_players, paired=paired)
    v_full, v_empty = game(full_and_empty(num_players, device)).double()
    moments = RunningMoments()
    converged = False
    step = 2 if paired else 1
    while (budget := min(batch_size, max_evals - game.num_evals)) >= step:
        budget -= budget % step
        masks = sampler.sample(budget, generator=generator, device=device)
        samples = sim_semivalue_samples(masks, game(masks).double(), v_full, v_empty)
        if paired:
            samples = samples.view(budget // 2, 2, num_players, -1).mean(1)
        moments.update(samples)
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
