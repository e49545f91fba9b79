"""Insertion / deletion on pixels, RISE's protocol (eclique/RISE ``CausalMetric``).

Pixels are ordered by the pixel map (native, or the patch map upsampled bilinearly). Deletion sets
the top pixels to 0 in normalised space (the dataset mean), insertion copies them onto an 11 x 11,
sigma 5 Gaussian blur of the image; ``num_steps`` equal steps of ceil(H * W / num_steps) pixels
(RISE: 224 pixels a step at 224^2) give num_steps + 1 scores, each the softmax probability of the
explained class. AUC = trapezoid on [0, 1]: (sum - first / 2 - last / 2) / num_steps.
"""

import torch
from torchmetrics import Metric
from torchvision.transforms.functional import gaussian_blur

from shapvision.metrics.explanation_batch import pixel_ranks


def trapezoid_auc(curve: torch.Tensor) -> torch.Tensor:
    """RISE's ``auc``: the trapezoid rule on evenly spaced points over [0, 1], along the last dim."""
    return (curve.sum(-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (curve.shape[-1] - 1)


class PixelInsertionDeletion(Metric):
    full_state_update = False
    columns = ("insertion_pixels", "deletion_pixels")

    def __init__(
        self, num_steps: int = 28, blur_kernel: int = 11, blur_sigma: float = 5.0, **kwargs
    ):
        super().__init__(**kwargs)
        if num_steps < 1:
            raise ValueError(f"pixel insertion/deletion num_steps must be >= 1, got {num_steps}")
        self.num_steps, self.blur_kernel, self.blur_sigma = num_steps, blur_kernel, blur_sigma
        for name in ("insertion_sum", "deletion_sum"):
            self.add_state(
                name, default=torch.zeros(num_steps + 1, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, batch, attribution) -> None:
        images = batch.images
        size, _, h, w = images.shape
        step = -(-h * w // self.num_steps)
        revealed_count = (torch.arange(self.num_steps + 1, device=images.device) * step).clamp_max(
            h * w
        )
        ranks = pixel_ranks(batch.pixel_map(attribution)).view(size, 1, 1, h, w)
        top = ranks < revealed_count.view(1, -1, 1, 1, 1)
        blurred = gaussian_blur(images, [self.blur_kernel] * 2, [self.blur_sigma] * 2)
        x = images.unsqueeze(1)
        inserted = torch.where(top, x, blurred.unsqueeze(1)).reshape(-1, *images.shape[1:])
        deleted = torch.where(top, torch.zeros_like(x), x).reshape(-1, *images.shape[1:])
        classes = batch.target.repeat_interleave(self.num_steps + 1)
        steps = self.num_steps + 1
        self.insertion_sum += (
            batch.probabilities(inserted, classes).view(size, steps).double().sum(0)
        )
        self.deletion_sum += batch.probabilities(deleted, classes).view(size, steps).double().sum(0)
        self.count += size

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp_min(1)
        insertion, deletion = self.insertion_sum / count, self.deletion_sum / count
        return {
            "insertion_pixels": trapezoid_auc(insertion).float(),
            "deletion_pixels": trapezoid_auc(deletion).float(),
            "insertion_curve": insertion.float(),
            "deletion_curve": deletion.float(),
        }
