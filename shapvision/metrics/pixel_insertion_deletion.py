"""Insertion / deletion on pixels, RISE's protocol (eclique/RISE ``CausalMetric``).

Pixels are ordered by the pixel map (native, or the patch map upsampled bilinearly). Deletion sets
the top pixels to 0 in normalised space (the dataset mean); insertion copies them onto a blurred
copy of the image. The blur is RISE's by default (``blur: rise``): ``gkern(11, 5)``, scipy's
``gaussian_filter`` of an 11 x 11 delta with sigma 5 (so the kernel is the reflected, truncated
Gaussian scipy gives, not a plain sampled one), applied per channel by ``conv2d`` with zero padding
(the image's border darkens towards the mean); ``blur: torchvision`` is torchvision's
``gaussian_blur`` (sampled kernel, reflect padding), what we used before. ``num_steps`` equal steps
of ceil(H * W / num_steps) pixels give num_steps + 1 scores, each the softmax probability of the
explained class: the default 28 steps change 1,792 pixels a step at 224 x 224, RISE's batched
setting (224 x 8); ``num_steps: 224`` is its single-image setting (224 pixels a step). AUC = trapezoid
on [0, 1] of the mean curve: (sum - first / 2 - last / 2) / num_steps.
"""

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torchvision.transforms.functional import gaussian_blur

from shapvision.metrics.explanation_batch import pixel_ranks
from shapvision.metrics.per_image import PerImageMetric, mean_curves


def trapezoid_auc(curve: torch.Tensor) -> torch.Tensor:
    """RISE's ``auc``: the trapezoid rule on evenly spaced points over [0, 1], along the last dim."""
    return (curve.sum(-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (curve.shape[-1] - 1)


def rise_kernel(size: int, sigma: float) -> torch.Tensor:
    """RISE's ``gkern(klen, nsig)``: scipy's Gaussian filter of a centred delta, ``(size, size)``."""
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1
    return torch.from_numpy(gaussian_filter(delta, sigma))


def rise_blur(images: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    channels = images.shape[1]
    kernel = rise_kernel(size, sigma).to(images).expand(channels, 1, size, size)
    return F.conv2d(images, kernel, padding=size // 2, groups=channels)


class PixelInsertionDeletion(PerImageMetric):
    columns = ("insertion_pixels", "deletion_pixels")
    higher_is_better = {"insertion_pixels": True, "deletion_pixels": False}

    def __init__(
        self,
        num_steps: int = 28,
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
        blur: Literal["rise", "torchvision"] = "rise",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_steps < 1:
            raise ValueError(f"pixel insertion/deletion num_steps must be >= 1, got {num_steps}")
        if blur not in ("rise", "torchvision"):
            raise ValueError(f"pixel insertion blur must be 'rise' or 'torchvision', got {blur!r}")
        self.num_steps, self.blur_kernel, self.blur_sigma = num_steps, blur_kernel, blur_sigma
        self.blur = blur

    def field_sizes(self) -> dict[str, int]:
        return {"insertion_curve": self.num_steps + 1, "deletion_curve": self.num_steps + 1}

    def blurred(self, images: torch.Tensor) -> torch.Tensor:
        if self.blur == "rise":
            return rise_blur(images, self.blur_kernel, self.blur_sigma)
        return gaussian_blur(images, [self.blur_kernel] * 2, [self.blur_sigma] * 2)

    def update(self, batch, attribution) -> None:
        images = batch.images
        size, _, h, w = images.shape
        step = -(-h * w // self.num_steps)
        revealed_count = (torch.arange(self.num_steps + 1, device=images.device) * step).clamp_max(
            h * w
        )
        ranks = pixel_ranks(batch.pixel_map(attribution)).view(size, 1, 1, h, w)
        top = ranks < revealed_count.view(1, -1, 1, 1, 1)
        x = images.unsqueeze(1)
        inserted = torch.where(top, x, self.blurred(images).unsqueeze(1)).reshape(
            -1, *images.shape[1:]
        )
        deleted = torch.where(top, torch.zeros_like(x), x).reshape(-1, *images.shape[1:])
        classes = batch.target.repeat_interleave(self.num_steps + 1)
        steps = self.num_steps + 1
        self.record(
            batch.keys,
            insertion_curve=batch.probabilities(inserted, classes).view(size, steps),
            deletion_curve=batch.probabilities(deleted, classes).view(size, steps),
        )

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        columns = {"insertion_curve": "insertion_pixels", "deletion_curve": "deletion_pixels"}
        return mean_curves(weights, values, columns, trapezoid_auc)
