"""The random baseline: i.i.d. uniform values per patch, seeded per image (the floor every metric is read against)."""

import torch

from shapvision.attribution.base import Attribution, AttributionMethod, per_image_generators


class RandomAttribution(AttributionMethod):
    name = "random"

    def __init__(self, model, seed: int = 0):
        super().__init__(model)
        self.seed = seed

    def explain(self, images, target, index=None):
        if index is None:
            index = torch.arange(images.shape[0])
        values = [
            torch.rand(self.model.num_patches, generator=g, device=images.device)
            for g in per_image_generators(index, self.seed, images.device)
        ]
        return Attribution(torch.stack(values))
