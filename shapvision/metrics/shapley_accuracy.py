"""Shapley accuracy: estimated vs reference (exact or converged) Shapley values, per image.

For each image, over its N patches: L2 error ``||phi_hat - phi||_2``, Pearson and Spearman
correlation, for the target class and averaged over the other classes; the metric reports the mean
over images. A correlation that is undefined (a constant row: scipy's NaN) is left out of its mean
and counted in ``undefined``. States are sums, so DDP reduction gives the single-process result
(training validation does not pad: Lightning's validation sampler is not distributed by default).
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
            self.add_state(
                f"{field}_count",
                default=torch.tensor(0.0, dtype=torch.float64),
                dist_reduce_fx="sum",
            )
        self.add_state("undefined", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

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
        self.undefined += int(pearson.isnan().sum())
        is_target = torch.nn.functional.one_hot(target, est.shape[1]).bool()
        for name, per_class in (("l2", l2), ("pearson", pearson), ("spearman", spearman)):
            defined = ~per_class.isnan()
            values = per_class.nan_to_num(0.0)
            target_part, target_defined = values[is_target], defined[is_target]
            other = defined & ~is_target
            other_part = (values * other).sum(1) / other.sum(1).clamp_min(1)
            other_defined = other.any(1)
            self._add(f"{name}_target", target_part[target_defined])
            self._add(f"{name}_other", other_part[other_defined])

    def _add(self, field: str, values: torch.Tensor) -> None:
        setattr(self, field, getattr(self, field) + values.sum())
        setattr(self, f"{field}_count", getattr(self, f"{field}_count") + values.numel())

    def compute(self) -> dict[str, torch.Tensor]:
        out = {
            field: (getattr(self, field) / getattr(self, f"{field}_count").clamp_min(1)).float()
            for field in FIELDS
        }
        out["undefined"] = self.undefined.float()
        return out
