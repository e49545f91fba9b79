"""Insertion and deletion curves (RISE), over patches, scored by any model of the masked image.

Patches are ordered by attribution (largest first). The insertion curve reveals the top-k patches
for k = 0..N, the deletion curve removes them; each point is the probability of the explained
class. AUC = mean of the curve over its N + 1 points (ViT-Shapley's protocol; the trapezoid rule
differs only in halving the end points). What "removed" means is the scorer's: dropped tokens for a
surrogate, baseline pixels for a classifier.
"""

from collections.abc import Callable

import torch
from torchmetrics import Metric

ScoreFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def insertion_deletion_curves(
    score_fn: ScoreFunction, attributions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Curves ``(B, N + 1)``. ``score_fn(keep (B, N), mode)`` -> probability of the explained class ``(B,)``,
    with ``mode`` "insertion" or "deletion" so a scorer can use different baselines for each."""
    batch, num_patches = attributions.shape
    rank = attributions.argsort(1, descending=True).argsort(1)
    insertion, deletion = [], []
    for k in range(num_patches + 1):
        top_k = rank < k
        insertion.append(score_fn(top_k, "insertion"))
        deletion.append(score_fn(~top_k, "deletion"))
    return torch.stack(insertion, 1), torch.stack(deletion, 1)


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
