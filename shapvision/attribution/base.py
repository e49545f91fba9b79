"""The one interface of every explanation method.

``method.explain(images, target, index)`` -> :class:`Attribution`: per-patch values ``(B, N)`` for the
target class, and a pixel map ``(B, H, W)`` where the method is native to pixels (gradients, CAMs,
RISE). ``method.attribute(images, target)`` returns the patch values alone. ``index`` (dataset
positions) seeds the randomised methods per image, so DDP gives the same values as one process.

A method that cannot apply to a backbone raises :class:`UnsupportedBackbone` when it is built,
naming both, before any compute.

One sign convention: every method's values are oriented so that higher = more evidence for the
target (or, for a magnitude, more importance), which is the order every metric ranks by. ``values``
says which kind a method returns: ``signed`` (positive for the target, negative against: Shapley
values, IG, LRP, leave-one-out, RISE's mean score), ``positive`` (evidence for the target clipped at
zero: Grad-CAM, GAME) or ``magnitude`` (importance without a direction: saliency's and SmoothGrad's
absolute gradients, attention maps, EigenCAM). A magnitude ranks a patch that argues against the
target as high as one that argues for it; signed metrics (RMA counts positive values only) read it
as it is.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from shapvision.attribution.explained_model import ExplainedModel


class UnsupportedBackbone(ValueError):
    pass


@dataclass
class Attribution:
    patches: torch.Tensor
    pixels: torch.Tensor | None = None

    def pixel_map(self, grid_size, size) -> torch.Tensor:
        """``(B, H, W)``: the native pixel map, else the patch map upsampled bilinearly (Chefer's protocol)."""
        if self.pixels is not None:
            return self.pixels
        return patch_to_pixels(self.patches, grid_size, size)


def patch_to_pixels(patches: torch.Tensor, grid_size, size) -> torch.Tensor:
    """Per-patch values ``(B, N)`` -> ``(B, H, W)``, bilinear as in Chefer et al.'s evaluation code."""
    grid = patches.float().view(patches.shape[0], 1, *grid_size)
    return F.interpolate(grid, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def pixels_to_patches(pixels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """A pixel map ``(B, H, W)`` -> per-patch sums ``(B, N)`` in row-major grid order."""
    pooled = F.avg_pool2d(pixels.unsqueeze(1).float(), patch_size) * patch_size**2
    return pooled.flatten(1)


def target_values(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-patch values ``(B, N)`` of each image's ``target`` from values for every class (or
    caption) ``(B, N, K)``: how learned and self-explaining methods read their own outputs."""
    return values.gather(2, target.view(-1, 1, 1).expand(-1, values.shape[1], 1))[..., 0]


def per_image_generators(index: torch.Tensor, seed: int, device) -> list[torch.Generator]:
    """One generator per image, seeded by (seed, dataset index): the same draws wherever the image lands."""
    return [
        torch.Generator(device=device).manual_seed(seed * 1_000_003 + int(i))
        for i in index.tolist()
    ]


class AttributionMethod:
    """Subclasses set ``name`` and implement ``explain``; ``families`` lists the backbones they fit."""

    name: str = "method"
    families: tuple[str, ...] = ("vit", "resnet", "other")
    library: str = "shapvision"
    values: str = "signed"  # or "positive" / "magnitude": see the module docstring

    def __init__(self, model: ExplainedModel):
        if model.family not in self.families:
            raise UnsupportedBackbone(
                f"method {self.name!r} does not apply to {model.name}'s backbone "
                f"({type(model.backbone).__name__}, family {model.family!r}); it needs one of {self.families}"
            )
        self.model = model

    def explain(
        self, images: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None
    ) -> Attribution:
        raise NotImplementedError

    def attribute(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.explain(images, target).patches
