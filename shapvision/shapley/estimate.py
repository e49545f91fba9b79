"""What a sampling estimator returns, and the running moments every one of them accumulates.

Each sampling estimator averages i.i.d. per-sample estimates g_1..g_n of phi (shape ``(N, K)``),
so its standard error is ``std(g) / sqrt(n)`` and the Covert & Lee (2021) stopping rule applies
unchanged: stop when ``max_i std_i / (max_i phi_i - min_i phi_i) < threshold`` for every output.
"""

from dataclasses import dataclass

import torch


@dataclass
class ShapleyEstimate:
    """Estimated Shapley values with their standard errors.

    ``values`` and ``std`` are ``(N,)`` for a scalar game and ``(N, K)`` for K outputs;
    ``num_evals`` counts every call of the value function on one coalition, v(N) and v(empty) included.
    """

    values: torch.Tensor
    std: torch.Tensor
    num_evals: int
    converged: bool


class RunningMoments:
    """Mean and standard error of a stream of per-sample estimates, merged batch by batch (Chan et al.)."""

    def __init__(self):
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.sum_sq_dev: torch.Tensor | None = None

    def update(self, samples: torch.Tensor) -> None:
        """Add samples ``(S, ...)``, accumulated in float64."""
        samples = samples.double()
        n_new = samples.shape[0]
        mean_new = samples.mean(0)
        ssd_new = ((samples - mean_new) ** 2).sum(0)
        if self.mean is None:
            self.count, self.mean, self.sum_sq_dev = n_new, mean_new, ssd_new
            return
        total = self.count + n_new
        delta = mean_new - self.mean
        self.mean = self.mean + delta * (n_new / total)
        self.sum_sq_dev = self.sum_sq_dev + ssd_new + delta**2 * (self.count * n_new / total)
        self.count = total

    def standard_error(self) -> torch.Tensor:
        if self.count < 2:
            return torch.full_like(self.mean, float("inf"))
        return (self.sum_sq_dev / (self.count - 1) / self.count).sqrt()


def has_converged(values: torch.Tensor, std: torch.Tensor, threshold: float) -> bool:
    """Covert & Lee's rule on ``(N, K)`` values: max std / value range below ``threshold`` for every output."""
    spread = values.amax(0) - values.amin(0)
    worst_std = std.amax(0)
    ratio = torch.where(worst_std == 0, torch.zeros_like(worst_std), worst_std / spread)
    return bool((ratio < threshold).all())


def validate_budget(max_evals: int, minimum: int, what: str) -> None:
    if not isinstance(max_evals, int) or max_evals < minimum:
        raise ValueError(f"max_evals must be an int >= {minimum} for {what}, got {max_evals!r}")
