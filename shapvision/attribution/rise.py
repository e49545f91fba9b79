"""RISE (Petsiuk et al. 2018), written here (no library in the stack has it).

``num_masks`` random binary grids of ``cells`` x ``cells`` with keep probability ``p1``, upsampled
bilinearly to (cells + 1) x cell size and cropped at a random shift; saliency = sum_m p(target | x * m_m) m_m
/ (num_masks * p1), as in eclique/RISE ``explanations.py``. Masks are drawn from the image's dataset
index, so DDP and one process agree. Native to pixels; a patch's value is the mean over its pixels.
"""

import torch
import torch.nn.functional as F

from shapvision.attribution.base import (
    Attribution,
    AttributionMethod,
    per_image_generators,
    pixels_to_patches,
)
from shapvision.chunked import map_chunks


class RISEAttribution(AttributionMethod):
    name = "rise"

    def __init__(
        self,
        model,
        num_masks: int = 4000,
        cells: int = 7,
        p1: float = 0.5,
        batch_size: int = 500,
        seed: int = 0,
    ):
        super().__init__(model)
        if not 0 < p1 <= 1:
            raise ValueError(f"rise p1 must be in (0, 1], got {p1}")
        self.num_masks, self.cells, self.p1, self.batch_size, self.seed = (
            num_masks,
            cells,
            p1,
            batch_size,
            seed,
        )

    def masks(self, size, generator, device) -> torch.Tensor:
        h, w = size
        cell_h, cell_w = -(-h // self.cells), -(-w // self.cells)
        grid = (
            torch.rand(
                self.num_masks, 1, self.cells, self.cells, generator=generator, device=device
            )
            < self.p1
        ).float()
        up = F.interpolate(
            grid,
            size=((self.cells + 1) * cell_h, (self.cells + 1) * cell_w),
            mode="bilinear",
            align_corners=False,
        )
        shift_y = torch.randint(0, cell_h, (self.num_masks,), generator=generator, device=device)
        shift_x = torch.randint(0, cell_w, (self.num_masks,), generator=generator, device=device)
        rows = shift_y.view(-1, 1) + torch.arange(h, device=device)
        cols = shift_x.view(-1, 1) + torch.arange(w, device=device)
        picked = up[:, 0].gather(1, rows.unsqueeze(2).expand(-1, -1, up.shape[-1]))
        return picked.gather(2, cols.unsqueeze(1).expand(-1, h, -1))

    @torch.no_grad()
    def explain(self, images, target, index=None):
        if index is None:
            index = torch.arange(images.shape[0])
        size = images.shape[-2:]
        maps = []
        for image, t, generator in zip(
            images, target, per_image_generators(index, self.seed, images.device), strict=True
        ):
            masks = self.masks(size, generator, images.device)
            probs = map_chunks(
                lambda m, t=t, image=image: self.model.probabilities(
                    image.unsqueeze(0) * m.unsqueeze(1), t.expand(m.shape[0])
                ),
                masks,
                chunk=self.batch_size,
                what="RISE's masked forwards",
            )
            saliency = torch.einsum("m,mhw->hw", probs.to(masks.dtype), masks)
            maps.append(saliency / (self.num_masks * self.p1))
        pixels = torch.stack(maps)
        patch_size = self.model.patch_size
        return Attribution(pixels_to_patches(pixels, patch_size) / patch_size**2, pixels)
