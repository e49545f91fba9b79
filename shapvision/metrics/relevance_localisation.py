"""Relevance mass and rank accuracy (Arras et al. 2022), against a ground-truth mask.

- RMA = positive relevance inside the mask / total positive relevance (the paper counts positive
  relevance only; Quantus sums raw values, clevr-xai takes |R|).
- RRA = |top-K pixels by relevance, K = |mask|, that lie in the mask| / K (Quantus's K, without its
  known bug of K = len(s)).
Images whose mask is empty, or (RMA) whose map has no positive relevance, are undefined: counted in
``rma_undefined`` / ``rra_undefined`` and left out of the means. Higher is better for both.
"""

import torch

from shapvision.metrics.per_image import PerImageMetric


class RelevanceLocalisation(PerImageMetric):
    columns = ("rma", "rra")
    fields = {"rma": 0, "rra": 0}
    needs_masks = True
    higher_is_better = {"rma": True, "rra": True}
    per_caption = True  # image-text evaluation scores every caption of an image against its region

    def update(self, batch, attribution) -> None:
        if batch.gt_mask is None:
            raise ValueError(
                "RMA / RRA need ground-truth masks (batch['mask']); this data module has none"
            )
        relevance = batch.pixel_map(attribution).flatten(1).double()
        gt = batch.gt_mask.flatten(1).bool()
        size = gt.sum(1)
        positive = relevance.clamp_min(0)
        total = positive.sum(1)
        rma = (positive * gt).sum(1) / total.clamp_min(1e-300)
        rank = relevance.argsort(dim=1, descending=True, stable=True).argsort(1)
        rra = ((rank < size.unsqueeze(1)) & gt).sum(1).double() / size.clamp_min(1)
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=rma.device)
        self.record(
            batch.keys,
            rma=torch.where((size > 0) & (total > 0), rma, nan),
            rra=torch.where(size > 0, rra, nan),
        )
