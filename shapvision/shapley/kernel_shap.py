"""KernelSHAP as the constrained weighted least squares problem of Covert & Lee (2021).

phi = argmin E_{S ~ p}[(v(S) - v(empty) - 1_S^T phi)^2]  s.t.  1^T phi = total = v(N) - v(empty),
with p the Shapley kernel over sizes 1..N-1. With ``A = E[z z^T]`` and ``b = E[z (v(z) - v(empty))]``
the solution is ``phi = A^{-1} (b - 1 lambda)``, lambda fixed by the constraint.

Two estimators, as in ``shapreg``:
- default (``unbiased=False``, shapreg's ``ShapleyRegression``): A and b both averaged over the same
  samples. Their errors are correlated and largely cancel, so this converges much faster; it is
  consistent, with a bias of order 1/n. Its standard error comes from the delta method: linearising
  the KKT system gives the per-sample influence ``psi_s = P A^{-1} (b_s - A_s phi)`` with the
  projection ``P = I - u 1^T / (1^T u)``, ``u = A^{-1} 1``; ``std = std(psi) / sqrt(n)``.
- ``unbiased=True`` (shapreg's unbiased KernelSHAP): A in closed form (A_ii = 1/2, A_ij = P(i, j in S)),
  only b sampled. The estimate is linear in the b samples, so it is exactly unbiased and its standard
  error is that of the mapped samples.
"""

import math

import torch

from shapvision.shapley.estimate import (
    RunningMoments,
    ShapleyEstimate,
    has_converged,
    validate_budget,
)
from shapvision.shapley.game import GameEvaluator, ValueFunction
from shapvision.shapley.masks import full_and_empty
from shapvision.shapley.samplers import ShapleyKernelSampler, shapley_kernel_size_probabilities

# The delta-method std needs a pass over all stored samples, so it is checked whenever the sample count
# has grown by this factor rather than after every batch; the budget overshoot is bounded by it.
_CHECK_GROWTH = 1.1


def shapley_kernel_gram(num_players: int) -> torch.Tensor:
    """A = E_{S ~ Shapley kernel}[z z^T], float64 ``(N, N)``."""
    n = num_players
    p = shapley_kernel_size_probabilities(n)
    k = torch.arange(n + 1, dtype=torch.float64)
    co_occurrence = (p * k * (k - 1)).sum() / (n * (n - 1))
    gram = torch.full((n, n), float(co_occurrence), dtype=torch.float64)
    gram.fill_diagonal_(0.5)
    return gram


def constrained_solution_operator(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, w)`` such that the constrained solution is ``phi = T b + w total`` for any b and total."""
    ones = torch.ones(gram.shape[0], 1, dtype=gram.dtype, device=gram.device)
    gram_inv = torch.linalg.pinv(gram, hermitian=True)
    u = gram_inv @ ones
    projection = (
        torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) - (u @ ones.T) / u.sum()
    )
    return projection @ gram_inv, (u / u.sum()).squeeze(1)


class _SampleStore:
    """Paired (or single) masks and their gains v(S) - v(empty), kept for the delta-method std."""

    def __init__(self, paired: bool):
        self.paired = paired
        self.masks: list[torch.Tensor] = []
        self.gains: list[torch.Tensor] = []
        self.gram_sum = None
        self.b_sum = None
        self.count = 0

    def add(self, masks: torch.Tensor, gains: torch.Tensor) -> None:
        group = 2 if self.paired else 1
        z = masks.double().view(-1, group, masks.shape[-1])
        g = gains.view(-1, group, gains.shape[-1])
        gram = torch.einsum("sgi,sgj->ij", z, z) / group
        b = torch.einsum("sgi,sgk->ik", z, g) / group
        self.gram_sum = gram if self.gram_sum is None else self.gram_sum + gram
        self.b_sum = b if self.b_sum is None else self.b_sum + b
        self.masks.append(masks.view(-1, group, masks.shape[-1]))
        self.gains.append(g)
        self.count += z.shape[0]

    def solve(self, total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        transform, direction = constrained_solution_operator(self.gram_sum / self.count)
        values = transform @ (self.b_sum / self.count) + direction.unsqueeze(1) * total
        return values, transform

    def delta_method_std(
        self, values: torch.Tensor, transform: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        masks, gains = torch.cat(self.masks), torch.cat(self.gains)
        group = masks.shape[1]
        sum_sq = torch.zeros_like(values)
        for z, g in zip(masks.split(chunk), gains.split(chunk), strict=True):
            z = z.double()
            residual = g - torch.einsum("sgi,ik->sgk", z, values)
            influence = torch.einsum("ij,sgj,sgk->sik", transform, z, residual) / group
            sum_sq += (influence**2).sum(0)
        # The influences have mean exactly zero at the solution, so their variance is the mean square.
        return (sum_sq / (self.count - 1) / self.count).sqrt()


def kernel_shap(
    value_fn: ValueFunction,
    num_players: int,
    *,
    paired: bool = True,
    threshold: float | None = 0.01,
    max_evals: int = 2**17,
    batch_size: int = 64,
    unbiased: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ShapleyEstimate:
    """KernelSHAP estimate of the Shapley values of ``value_fn``.

    Samples coalitions from the Shapley kernel (``paired`` appends complements) ``batch_size`` evaluations
    at a time until the Covert & Lee rule ``max std / (max phi - min phi) < threshold`` holds or
    ``max_evals`` evaluations (v(N) and v(empty) included) are spent. ``threshold=None`` always spends
    the whole budget, for comparisons at equal cost. ``unbiased`` selects the estimator (module docstring).
    """
    validate_budget(max_evals, 6 if paired else 4, "kernel_shap (two samples to estimate a std)")
    if num_players < 2:
        raise ValueError(f"kernel_shap needs at least 2 players, got num_players={num_players}")
    if paired and batch_size % 2:
        raise ValueError(f"paired KernelSHAP needs an even batch_size, got {batch_size}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    game = GameEvaluator(value_fn, num_players, batch_size)
    sampler = ShapleyKernelSampler(num_players, paired=paired)
    v_full, v_empty = game(full_and_empty(num_players, device)).double()
    total = v_full - v_empty
    step = 2 if paired else 1

    if unbiased:
        transform, direction = constrained_solution_operator(
            shapley_kernel_gram(num_players).to(device)
        )
        offset = direction.unsqueeze(1) * total
        moments = RunningMoments()
    else:
        store = _SampleStore(paired)
        next_check = 2

    def current(final: bool):
        if unbiased:
            return moments.mean + offset, moments.standard_error()
        values, solve_transform = store.solve(total)
        if not final and store.count < next_check:
            return values, None
        return values, store.delta_method_std(values, solve_transform)

    converged = False
    while (budget := min(batch_size, max_evals - game.num_evals)) >= step:
        budget -= budget % step
        masks = sampler.sample(budget, generator=generator, device=device)
        gains = game(masks).double() - v_empty
        if unbiased:
            b_terms = (masks.double().unsqueeze(2) * gains.unsqueeze(1)).view(
                budget // step, step, num_players, -1
            )
            moments.update(torch.einsum("ij,sgjk->sik", transform, b_terms) / step)
            count = moments.count
        else:
            store.add(masks, gains)
            count = store.count
        if threshold is None or count < 2:
            continue
        values, std = current(final=False)
        if std is None:
            continue
        if not unbiased:
            next_check = max(count + 1, math.ceil(count * _CHECK_GROWTH))
        if has_converged(values, std, threshold):
            converged = True
            break
    values, std = current(final=True)
    return ShapleyEstimate(game.finalize(values), game.finalize(std), game.num_evals, converged)
