"""SaCo, salience-guided faithfulness coefficient (Wu et al., CVPR 2024; aggregation as adreamwu/SaCo).

Pixels are ranked by salience and split into K equal groups G_1..G_K (G_1 most salient); s_i = total
salience of G_i; d_i = p(y|x) - p(y|x with G_i alone replaced by the image's per-channel mean), y the
predicted (explained) class. For every pair i < j: w = s_i - s_j if d_i >= d_j else -(s_i - s_j);
F += w, W += |w|; SaCo = F / W in [-1, 1], the mean over images; higher is better. An image with
W = 0 (constant salience) has no defined value: it is counted in ``saco_undefined`` and left out.
"""

import torch

from shapvision.metrics.explanation_batch import pixel_ranks
from shapvision.metrics.per_image import PerImageMetric


def saco_scores(salience: torch.Tensor, drops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image F and W from group saliences ``(B, K)`` and probability drops ``(B, K)``."""
    diff = salience.unsqueeze(2) - salience.unsqueeze(1)  # s_i - s_j
    agree = drops.unsqueeze(2) >= drops.unsqueeze(1)
    weight = torch.where(agree, diff, -diff)
    upper = torch.ones_like(diff, dtype=torch.bool).triu(1)
    return (weight * upper).sum((1, 2)), (weight.abs() * upper).sum((1, 2))


class SaCo(PerImageMetric):
    columns = ("saco",)
    fields = {"saco": 0}
    higher_is_better = {"saco": True}

    def __init__(self, num_groups: int = 10, **kwargs):
        super().__init__(**kwargs)
        if num_groups < 2:
            raise ValueError(f"SaCo num_groups must be >= 2, got {num_groups}")
        self.num_groups = num_groups

    def update(self, batch, attribution) -> None:
        images, k = batch.images, self.num_groups
        size, _, h, w = images.shape
        salience = batch.pixel_map(attribution).flatten(1).double()
        group = (pixel_ranks(salience) * k) // (h * w)  # (B, H * W), 0 = most salient
        one_hot = torch.nn.functional.one_hot(group, k).to(salience.dtype)  # (B, HW, K)
        group_salience = torch.einsum("bp,bpk->bk", salience, one_hot)
        in_group = one_hot.transpose(1, 2).bool().view(size, k, 1, h, w)
        fill = images.mean((2, 3), keepdim=True).unsqueeze(1)
        perturbed = torch.where(in_group, fill, images.unsqueeze(1)).reshape(-1, *images.shape[1:])
        probs = (
            batch.probabilities(perturbed, batch.target.repeat_interleave(k)).view(size, k).double()
        )
        drops = batch.original_probability(batch.target).double().unsqueeze(1) - probs
        f, total = saco_scores(group_salience, drops)
        saco = torch.where(total > 0, f / total.clamp_min(1e-300), float("nan"))
        self.record(batch.keys, saco=saco)
