"""Insertion / deletion with patches removed through the masked model (ViT-Shapley's protocol).

Patches are ordered by attribution (largest first); the insertion curve reveals the top k, the
deletion curve removes them, k = 0..N; each point is the probability of the explained class under
the masked forward (dropped tokens for a ViT). AUC = mean of the N + 1 points of the mean curve, as
ViT-Shapley reports it (the trapezoid rule differs only in halving the end points). All 2 (N + 1)
masked samples of an image go through the model together, so token packing fills rows with about
N^2 / 2 kept tokens in all instead of N full forwards (``benchmarks/insertion_deletion.py``).
"""

import torch

from shapvision.metrics.per_image import PerImageMetric, mean_curves
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


class PatchInsertionDeletion(PerImageMetric):
    columns = ("insertion_patches", "deletion_patches")
    higher_is_better = {"insertion_patches": True, "deletion_patches": False}

    def __init__(self, num_patches: int, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = num_patches

    def field_sizes(self) -> dict[str, int]:
        return {"insertion_curve": self.num_patches + 1, "deletion_curve": self.num_patches + 1}

    def update(self, batch, attribution) -> None:
        insertion, deletion = packed_curves(batch, batch.patch_values(attribution))
        self.record(batch.keys, insertion_curve=insertion, deletion_curve=deletion)

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        columns = {"insertion_curve": "insertion_patches", "deletion_curve": "deletion_patches"}
        return mean_curves(weights, values, columns, lambda curve: curve.mean(-1))
