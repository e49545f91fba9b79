"""ImageNet-Segmentation scores of a relevance map (Chefer et al.'s protocol, ``imagenet_seg_eval.py``).

The map (native pixels, or the patch map upsampled bilinearly) is min-max normalised per image to
Res; foreground = Res > mean(Res). Against the ground-truth mask (True = object):
- pixel accuracy = correct / labelled pixels, summed over the whole dataset (micro);
- mIoU = mean over {background, foreground} of (sum of intersections) / (sum of unions) over the dataset;
- mAP = mean over images of the average precision of the continuous scores [1 - Res, Res] against
  the one-hot ground truth, both channels pooled (torchmetrics' ``binary_average_precision``, the
  same step-wise AP as sklearn's ``average_precision_score``).
"""

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_average_precision


def min_max(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


class SegmentationScores(Metric):
    full_state_update = False
    columns = ("pixel_accuracy", "mAP", "mIoU")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("correct", "labelled", "ap_sum"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state(
            "intersection", default=torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("union", default=torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, batch, attribution) -> None:
        if batch.gt_mask is None:
            raise ValueError(
                "segmentation metrics need ground-truth masks (batch['mask']): use a data module that has them "
                "(ImageNetSegmentationDataModule, or DigitsDataModule with ink masks)"
            )
        res = min_max(batch.pixel_map(attribution)).double()
        gt = batch.gt_mask.bool()
        predicted = res > res.flatten(1).mean(1).view(-1, 1, 1)
        self.correct += (predicted == gt).sum()
        self.labelled += gt.numel()
        for c, (p, g) in enumerate(((~predicted, ~gt), (predicted, gt))):
            self.intersection[c] += (p & g).sum()
            self.union[c] += (p | g).sum()
        for r, g in zip(res.flatten(1), gt.flatten(1).long(), strict=True):
            scores, targets = torch.cat([1 - r, r]), torch.cat([1 - g, g])
            self.ap_sum += binary_average_precision(scores, targets).double()
        self.count += res.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        iou = self.intersection / self.union.clamp_min(1)
        return {
            "pixel_accuracy": (self.correct / self.labelled.clamp_min(1)).float(),
            "mAP": (self.ap_sum / self.count.clamp_min(1)).float(),
            "mIoU": iou.mean().float(),
        }
