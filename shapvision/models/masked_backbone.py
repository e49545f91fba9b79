"""The masked-forward interface every backbone follows."""

import torch
import torch.nn as nn

from shapvision.models.patch_features import PatchFeatures
from shapvision.shapley.masks import check_masks


class MaskedBackbone(nn.Module):
    """A vision backbone whose players are the cells of a patch grid.

    ``forward_patches(images, keep=None)`` returns :class:`PatchFeatures`; ``keep`` is a bool ``(B, N)``
    mask, True = patch present. Subclasses set ``grid_size`` (rows, cols), ``patch_size`` (pixels per
    cell side) and ``embed_dim``.
    """

    grid_size: tuple[int, int]
    patch_size: int
    embed_dim: int

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def forward_patches(
        self, images: torch.Tensor, keep: torch.Tensor | None = None
    ) -> PatchFeatures:
        raise NotImplementedError

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> PatchFeatures:
        return self.forward_patches(images, keep)

    def validate_inputs(self, images: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Check shapes against the grid; return ``keep`` (all True when None)."""
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
        expected = (self.grid_size[0] * self.patch_size, self.grid_size[1] * self.patch_size)
        if tuple(images.shape[-2:]) != expected:
            raise ValueError(
                f"{type(self).__name__} expects {expected[0]}x{expected[1]} images "
                f"({self.grid_size[0]}x{self.grid_size[1]} patches of {self.patch_size} px), got "
                f"{images.shape[-2]}x{images.shape[-1]}; set img_size in the model config or resize the data"
            )
        if keep is None:
            return torch.ones(
                images.shape[0], self.num_patches, dtype=torch.bool, device=images.device
            )
        check_masks(keep, self.num_patches, "keep")
        if keep.shape != (images.shape[0], self.num_patches):
            raise ValueError(
                f"keep must be (B, N) = ({images.shape[0]}, {self.num_patches}), got {tuple(keep.shape)}"
            )
        return keep


def is_one_image_expanded(images: torch.Tensor) -> bool:
    """Whether a batch is one image under many masks, expanded without a copy (batch stride 0), as a
    game over one image passes it: backbones then embed the image once instead of once per mask
    (the patch embedding of 2^16 copies cost a sixth of an exact Shapley reference on digit scenes)."""
    return images.shape[0] > 1 and images.stride(0) == 0


def pixel_mask(keep: torch.Tensor, grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Patch mask ``(B, N)`` -> pixel mask ``(B, 1, H, W)`` in the mask's float-castable bool."""
    grid = keep.view(keep.shape[0], 1, *grid_size)
    return grid.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def repeat_per_mask(images: torch.Tensor, num_masks: int) -> torch.Tensor:
    """Images ``(B, C, H, W)`` -> ``(B * M, C, H, W)``, each image M times in a row, matching masks
    ``(B, M, N)`` reshaped to ``(B * M, N)``."""
    return (
        images.unsqueeze(1).expand(-1, num_masks, *images.shape[1:]).reshape(-1, *images.shape[1:])
    )
