"""Insertion / deletion with patches removed through the masked model (ViT-Shapley's protocol).

Patches are ordered by attribution (largest first); the insertion curve reveals the top k, the
deletion curve removes them, k = 0..N; each point is the probability of the explained class under
the masked forward (dropped tokens for a ViT). AUC = mean of the N + 1 points, as ViT-Shapley
reports it. All 2 (N + 1) masked samples of an image go through the model together, so token
packing fills rows with about N^2 / 2 kept tokens in all instead of N full forwards
(``benchmarks/insertion_deletion.py`` measures the difference).
"""

import torch

from shapvision.metrics.insertion_deletion import InsertionDeletion
from shapvision.models.masked_backbone import repeat_per_mask


def curve_masks(attribution: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Insertion and deletion masks ``(B, N + 1, N)``: the top-k patches kept / removed, k = 0..N."""
    num_patches = attribution.shape[1]
    rank = attribution.argsort(dim=1, descending=True, stable=True).argsort(1)
    k = torch.arange(num_patches + 1, device=attribution.device).view(1, -1, 1)
    top_k = rank.unsqueeze(1) < k
    return top_k, ~top_k


def packed_curves(batch, attribution: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both curves ``(B, N + 1)``, every masked sample of the batch in chunked masked forwards."""
    insertion, deletion = curve_masks(attribution)
    size, steps = attribution.shape[0], insertion.shape[1]
    keep = torch.cat([insertion, deletion], 1).reshape(-1, attribution.shape[1])
    images = repeat_per_mask(batch.images, 2 * steps)
    classes = batch.target.repeat_interleave(2 * steps)
    scores = batch.masked_probabilities(images, keep, classes).view(size, 2, steps)
    return scores[:, 0], scores[:, 1]


class PatchInsertionDeletion(InsertionDeletion):
    columns = ("insertion_patches", "deletion_patches")

    def update(self, batch, attribution) -> None:
        super().update(*packed_curves(batch, batch.patch_values(attribution)))

    def compute(self) -> dict[str, torch.Tensor]:
        result = super().compute()
        return {
            "insertion_patches": result["insertion_auc"],
            "deletion_patches": result["deletion_auc"],
            "insertion_curve": result["insertion_curve"],
            "deletion_curve": result["deletion_curve"],
        }
