"""Shapley accuracy: estimated vs reference (exact or converged) Shapley values, per image.

For each image, over its N patches: L2 error ``||phi_hat - phi||_2``, Pearson and Spearman
correlation, for the target class and averaged over the other classes; the metric reports the mean
over images. States are sums, so DDP reduction gives the single-process result.
"""

import torch
from torchmetrics import Metric

from shapvision.metrics.correlation import pearson_rows, spearman_rows

FIELDS = (
    "l2_target",
    "pearson_target",
    "spearman_target",
    "l2_other",
    "pearson_other",
    "spearman_other",
)


class ShapleyAccuracy(Metric):
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for field in FIELDS:
            self.add_state(
                field, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, estimate: torch.Tensor, reference: torch.Tensor, target: torch.Tensor) -> None:
        """estimate / reference ``(B, N, K)``, target ``(B,)`` class index."""
        if estimate.shape != reference.shape or estimate.dim() != 3:
            raise ValueError(
                f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} must both be (B, N, K)"
            )
        est, ref = (
            estimate.double().transpose(1, 2),
            reference.double().transpose(1, 2),
        )  # (B, K, N)
        l2 = (est - ref).norm(dim=-1)
        pearson, spearman = pearson_rows(est, ref), spearman_rows(est, ref)
        is_target = torch.nn.functional.one_hot(target, est.shape[1]).bool()
        num_other = max(est.shape[1] - 1, 1)
        for name, per_class in (("l2", l2), ("pearson", pearson), ("spearman", spearman)):
            target_part = per_class[is_target]
            other_part = per_class.masked_fill(is_target, 0).sum(1) / num_other
            setattr(self, f"{name}_target", getattr(self, f"{name}_target") + target_part.sum())
            setattr(self, f"{name}_other", getattr(self, f"{name}_other") + other_part.sum())
        self.count += est.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp_min(1)
        return {field: (getattr(self, field) / count).float() for field in FIELDS}
