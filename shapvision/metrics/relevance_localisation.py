"""Relevance mass and rank accuracy (Arras et al. 2022), against a ground-truth mask.

- RMA = positive relevance inside the mask / total positive relevance (the paper counts positive
  relevance only; Quantus sums raw values, clevr-xai takes |R|).
- RRA = |top-K pixels by relevance, K = |mask|, that lie in the mask| / K (Quantus's K, without its
  known bug of K = len(s)).
Images whose mask is empty, or (RMA) whose map has no positive relevance, are undefined: counted in
``localisation_undefined`` and left out of the means. Higher is better for both.
"""

import torch
from torchmetrics import Metric


class RelevanceLocalisation(Metric):
    full_state_update = False
    columns = ("rma", "rra")
    per_caption = True  # image-text evaluation scores every caption of an image against its region

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("rma_sum", "rra_sum"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        for name in ("rma_count", "rra_count", "undefined"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

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
        rma_defined = (size > 0) & (total > 0)
        rma = (positive * gt).sum(1) / total.clamp_min(1e-300)
        rank = relevance.argsort(dim=1, descending=True, stable=True).argsort(1)
        rra = ((rank < size.unsqueeze(1)) & gt).sum(1).double() / size.clamp_min(1)
        rra_defined = size > 0
        self.rma_sum += rma[rma_defined].sum()
        self.rra_sum += rra[rra_defined].sum()
        self.rma_count += int(rma_defined.sum())
        self.rra_count += int(rra_defined.sum())
        self.undefined += int((~rma_defined).sum())

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "rma": (self.rma_sum / self.rma_count.clamp_min(1)).float(),
            "rra": (self.rra_sum / self.rra_count.clamp_min(1)).float(),
            "localisation_undefined": self.undefined.float(),
        }
