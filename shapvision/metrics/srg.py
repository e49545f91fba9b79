"""SRG, symmetric relevance gain (Bluecher et al. 2024; bluecher31/pixel-flipping ``get_results``).

Patches (the natural superpixels of a patch model; the reference uses 25 SLIC superpixels) are
occluded in order of their attribution: most influential first (MIF) and least influential first
(LIF), at every fraction k / N. y(f) = softmax probability of the label class (``which_target: label``;
the explained class where there is no label), occluded pixels set to ``fill`` (0, the mean, the
reference's constant imputer; or one value per channel). SRG = integral over [0, 1] of
y_LIF - y_MIF (trapezoid on the linear interpolation, what ``scipy.integrate.quad`` computes on it).
Higher is better.

R-SRG is not defined in any code we could find. Ours (documented in docs/evaluation.md) is SRG
relative to the *dataset's* score span: sum_i SRG_i / sum_i |y_i(x) - y_i(all occluded)|. Dividing
per image, as we first did, flips the sign where an image's span is negative and explodes where it is
near zero; the dataset ratio keeps SRG's sign, is bounded where SRG is (|R-SRG| <= max |SRG_i| /
mean |span_i|), and is resampled as a ratio by the bootstrap. Undefined (NaN) only if no image
changes its score at all.
"""

import torch

from shapvision.metrics.explanation_batch import as_fill
from shapvision.metrics.patch_insertion_deletion import curve_masks
from shapvision.metrics.per_image import PerImageMetric, weighted_mean
from shapvision.metrics.pixel_insertion_deletion import trapezoid_auc
from shapvision.models.masked_backbone import pixel_mask, repeat_per_mask


class SymmetricRelevanceGain(PerImageMetric):
    columns = ("srg", "r_srg")
    fields = {"srg": 0, "span": 0}
    higher_is_better = {"srg": True, "r_srg": True}

    def __init__(self, fill: float | list[float] = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill = fill if isinstance(fill, int | float) else tuple(fill)

    def update(self, batch, attribution) -> None:
        model, images = batch.model, batch.images
        scores = batch.patch_values(attribution)
        _, mif_keep = curve_masks(scores)  # the top k removed: most influential first
        _, lif_keep = curve_masks(-scores)
        size, steps, n = mif_keep.shape
        keep = torch.cat([mif_keep, lif_keep], 1).reshape(-1, n)
        kept = pixel_mask(keep, model.grid_size, model.patch_size).to(images.dtype)
        fill = as_fill(self.fill, images)
        occluded = repeat_per_mask(images, 2 * steps) * kept + fill * (1 - kept)
        classes = batch.label_or_target.repeat_interleave(2 * steps)
        y = batch.probabilities(occluded, classes).view(size, 2, steps).double()
        self.record(batch.keys, srg=trapezoid_auc(y[:, 1] - y[:, 0]), span=y[:, 0, 0] - y[:, 0, -1])

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        span = weights @ values["span"].abs()
        srg_total = weights @ values["srg"]
        return {
            "srg": weighted_mean(weights, values["srg"]),
            "r_srg": torch.where(span > 0, srg_total / span.clamp_min(1e-300), float("nan")),
        }
