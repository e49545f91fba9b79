"""Surrogate quality as a function of the fraction of patches kept: KL to the classifier and accuracy."""

import torch
from torchmetrics import Metric


class MaskedAgreementByFraction(Metric):
    """Per bin of kept fraction (``num_bins`` equal-width bins over [0, 1]): mean KL and accuracy."""

    full_state_update = False

    def __init__(self, num_bins: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.num_bins = num_bins
        for name in ("kl_sum", "correct_sum", "count"):
            self.add_state(
                name, default=torch.zeros(num_bins, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(self, kl: torch.Tensor, correct: torch.Tensor, fraction_kept: torch.Tensor) -> None:
        bins = (fraction_kept * self.num_bins).long().clamp(0, self.num_bins - 1)
        self.kl_sum += torch.bincount(bins, kl.double(), self.num_bins)
        self.correct_sum += torch.bincount(bins, correct.double(), self.num_bins)
        self.count += torch.bincount(bins, minlength=self.num_bins).double()

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp_min(1)
        return {
            "kl": (self.kl_sum / count).float(),
            "accuracy": (self.correct_sum / count).float(),
            "count": self.count.float(),
        }
