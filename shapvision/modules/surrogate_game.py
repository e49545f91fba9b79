"""The frozen surrogate as a value function v(S) = link(surrogate(x, S)), batched over images and masks."""

import torch

from shapvision.chunked import map_chunks
from shapvision.models.masked_backbone import repeat_per_mask
from shapvision.shapley.links import Link, get_link


@torch.no_grad()
def surrogate_values(
    surrogate, images: torch.Tensor, masks: torch.Tensor, link: str | Link, chunk: int = 4096
) -> torch.Tensor:
    """v(S) ``(B, M, K)`` for images ``(B, C, H, W)`` and masks ``(B, M, N)``, ``chunk`` evaluations at a
    time; the link is applied in float32 (probabilities near 0 / 1 under bf16 autocast)."""
    batch, num_masks, num_patches = masks.shape
    flat_images = repeat_per_mask(images, num_masks)
    flat_masks = masks.reshape(-1, num_patches)
    link = get_link(link)
    values = map_chunks(
        lambda img, keep: link(surrogate(img, keep).float()),
        flat_images,
        flat_masks,
        chunk=chunk,
        what="surrogate values",
    )
    return values.view(batch, num_masks, -1)
