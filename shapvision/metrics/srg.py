"""SRG, symmetric relevance gain (Bluecher et al. 2024; bluecher31/pixel-flipping ``get_results``).

Patches (the natural superpixels of a patch model; the reference uses 25 SLIC superpixels) are
occluded in order of their attribution: most influential first (MIF) and least influential first
(LIF), at every fraction k / N. y(f) = softmax probability of the label class (``which_target: label``;
the explained class where there is no label), occluded pixels set to 0 (the mean, the reference's
constant imputer). SRG = integral over [0, 1] of y_LIF - y_MIF (trapezoid on the linear interpolation,
what ``scipy.integrate.quad`` computes on it). Higher is better.

R-SRG is not defined in any code we could find; ours is the *relative* SRG, each image's SRG divided
by its score range y(x) - y(all occluded), so that models of different confidence compare
(an image with no range is counted in ``r_srg_undefined``). Our choice, documented in docs/evaluation.md.
"""

import torch
from torchmetrics import Metric

from shapvision.metrics.patch_insertion_deletion import curve_masks
from shapvision.metrics.pixel_insertion_deletion import trapezoid_auc
from shapvision.models.masked_backbone import pixel_mask, repeat_per_mask


class SymmetricRelevanceGain(Metric):
    full_state_update = False
    columns = ("srg", "r_srg")

    def __init__(self, fill: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill = fill
        for name in ("srg_sum", "r_srg_sum"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        for name in ("count", "r_count", "r_undefined"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, batch, attribution) -> None:
        model, images = batch.model, batch.images
        scores = batch.patch_values(attribution)
        _, mif_keep = curve_masks(scores)  # the top k removed: most influential first
        _, lif_keep = curve_masks(-scores)
        size, steps, n = mif_keep.shape
        keep = torch.cat([mif_keep, lif_keep], 1).reshape(-1, n)
        kept = pixel_mask(keep, model.grid_size, model.patch_size).to(images.dtype)
        occluded = repeat_per_mask(images, 2 * steps) * kept + self.fill * (1 - kept)
        classes = batch.label_or_target.repeat_interleave(2 * steps)
        y = batch.probabilities(occluded, classes).view(size, 2, steps).double()
        srg = trapezoid_auc(y[:, 1] - y[:, 0])
        span = y[:, 0, 0] - y[:, 0, -1]
        defined = span.abs() > 1e-12
        self.srg_sum += srg.sum()
        self.count += size
        self.r_srg_sum += (srg[defined] / span[defined]).sum()
        self.r_count += int(defined.sum())
        self.r_undefined += int((~defined).sum())

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "srg": (self.srg_sum / self.count.clamp_min(1)).float(),
            "r_srg": (self.r_srg_sum / self.r_count.clamp_min(1)).float(),
            "r_srg_undefined": self.r_undefined.float(),
        }
