"""Mean insertion and deletion curves over patches and their AUCs, as DDP-synced sums.

The curves themselves come from :mod:`shapvision.metrics.patch_insertion_deletion`. AUC = mean of
the curve over its N + 1 points (ViT-Shapley's protocol; the trapezoid rule differs only in halving
the end points).
"""

import torch
from torchmetrics import Metric


class InsertionDeletion(Metric):
    """Mean insertion and deletion curves and their AUCs over a dataset."""

    full_state_update = False

    def __init__(self, num_patches: int, **kwargs):
        super().__init__(**kwargs)
        self.add_state(
            "insertion_sum",
            default=torch.zeros(num_patches + 1, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state(
            "deletion_sum",
            default=torch.zeros(num_patches + 1, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, insertion: torch.Tensor, deletion: torch.Tensor) -> None:
        self.insertion_sum += insertion.double().sum(0)
        self.deletion_sum += deletion.double().sum(0)
        self.count += insertion.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        insertion = (self.insertion_sum / self.count.clamp_min(1)).float()
        deletion = (self.deletion_sum / self.count.clamp_min(1)).float()
        return {
            "insertion_auc": insertion.mean(),
            "deletion_auc": deletion.mean(),
            "insertion_curve": insertion,
            "deletion_curve": deletion,
        }
