"""Sparseness: the Gini index of the absolute patch values (Chalasani et al. 2020, Quantus's
``Sparseness``). Per image, with |a| sorted ascending, a_1 <= ... <= a_n:
G = sum_i (2 i - n - 1) a_i / (n sum_i a_i), 0 for a uniform map and (n - 1) / n for a single patch.
Higher = a more concentrated explanation (Quantus reads higher as better; we rank it that way, as
LATEC does). Computed on the patch values, the one resolution every method has (Quantus takes the
attribution at the input's size). Quantus adds 1e-7 to every value before sorting, so that a zero map
scores instead of dividing by zero; ours leaves an all-zero map undefined (counted).
"""

import torch

from shapvision.metrics.per_image import PerImageMetric


def gini(values: torch.Tensor) -> torch.Tensor:
    """Row-wise Gini index of ``|values|`` ``(B, n)``; NaN for an all-zero row."""
    a = values.abs().double().sort(1).values
    n = a.shape[1]
    i = torch.arange(1, n + 1, dtype=torch.float64, device=a.device)
    total = a.sum(1)
    score = ((2 * i - n - 1) * a).sum(1) / (n * total.clamp_min(1e-300))
    return torch.where(total > 0, score, float("nan"))


class Sparseness(PerImageMetric):
    columns = ("sparseness",)
    fields = {"sparseness": 0}
    higher_is_better = {"sparseness": True}

    def update(self, batch, attribution) -> None:
        self.record(batch.keys, sparseness=gini(batch.patch_values(attribution)))
