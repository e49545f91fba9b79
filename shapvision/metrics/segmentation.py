"""ImageNet-Segmentation scores of a relevance map (Chefer et al.'s protocol, ``imagenet_seg_eval.py``).

The map (native pixels, or the patch map upsampled bilinearly) is min-max normalised per image to
Res; foreground = Res > mean(Res). Against the ground-truth mask (True = object):
- pixel accuracy = correct / labelled pixels, summed over the whole dataset (micro);
- mIoU = mean over {background, foreground} of (sum of intersections) / (sum of unions) over the dataset;
- mAP = mean over images of the average precision of the continuous scores [1 - Res, Res] against
  the one-hot ground truth, both channels pooled (torchmetrics' ``binary_average_precision``, the
  same step-wise AP as sklearn's ``average_precision_score``).
A constant map carries no ranking: min-max has no range, so Res is 0.5 everywhere (every score
ties, AP = the positive share of the pooled channels = 0.5, as Chefer's protocol scores a map that
ranks nothing) and nothing is foreground. Clamping the range instead, as we did, gave Res = 0 and an
AP equal to the background's share (0.76 on a typical mask), which rewarded the all-zero maps
Grad-CAM often returns on a ViT.
"""

import torch
from torchmetrics.functional.classification import binary_average_precision

from shapvision.metrics.per_image import PerImageMetric, weighted_mean

SUMS = ("correct", "labelled", "intersection_bg", "intersection_fg", "union_bg", "union_fg")


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max to [0, 1]; 0.5 everywhere on a constant map."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = high - low
    scaled = (flat - low) / span.clamp_min(1e-12)
    return torch.where(span > 0, scaled, torch.full_like(flat, 0.5)).view_as(maps)


class SegmentationScores(PerImageMetric):
    columns = ("pixel_accuracy", "mAP", "mIoU")
    fields = {**{name: 0 for name in SUMS}, "ap": 0}
    higher_is_better = {"pixel_accuracy": True, "mAP": True, "mIoU": True}
    needs_masks = True

    def update(self, batch, attribution) -> None:
        if batch.gt_mask is None:
            raise ValueError(
                "segmentation metrics need ground-truth masks (batch['mask']): use a data module that has them "
                "(ImageNetSegmentationDataModule, or DigitsDataModule with ink masks)"
            )
        res = min_max(batch.pixel_map(attribution)).double()
        gt = batch.gt_mask.bool()
        predicted = res > res.flatten(1).mean(1).view(-1, 1, 1)

        def total(x):
            return x.flatten(1).sum(1)

        ap = torch.stack(
            [
                binary_average_precision(torch.cat([1 - r, r]), torch.cat([1 - g, g])).double()
                for r, g in zip(res.flatten(1), gt.flatten(1).long(), strict=True)
            ]
        )
        self.record(
            batch.keys,
            correct=total(predicted == gt),
            labelled=total(torch.ones_like(gt)),
            intersection_bg=total(~predicted & ~gt),
            intersection_fg=total(predicted & gt),
            union_bg=total(~predicted | ~gt),
            union_fg=total(predicted | gt),
            ap=ap,
        )

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        sums = {name: weights @ values[name] for name in SUMS}
        iou_bg = sums["intersection_bg"] / sums["union_bg"].clamp_min(1)
        iou_fg = sums["intersection_fg"] / sums["union_fg"].clamp_min(1)
        return {
            "pixel_accuracy": sums["correct"] / sums["labelled"].clamp_min(1),
            "mAP": weighted_mean(weights, values["ap"]),
            "mIoU": (iou_bg + iou_fg) / 2,
        }
