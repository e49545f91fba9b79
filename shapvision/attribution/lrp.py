"""Layer-wise relevance propagation from zennit.

The ``EpsilonPlusFlat`` composite (flat rule on the first layer, z+ on convolutions, epsilon on dense
layers) with batch-norm merging as canonizer. zennit has no transformer-specific rules: on a ViT,
attention products and LayerNorm pass relevance as plain gradients (the setting Chefer et al. improve
on; their own LRP is not a library and is not reproduced here). Native to pixels: relevance summed
over channels; a patch's value is the sum over its pixels.
"""

import torch
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonPlusFlat

from shapvision.attribution.base import Attribution, AttributionMethod, pixels_to_patches


class LRPAttribution(AttributionMethod):
    name = "lrp"
    library = "zennit"

    def explain(self, images, target, index=None):
        composite = EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()])
        network = self.model.network
        with torch.enable_grad(), Gradient(model=network, composite=composite) as attributor:
            logits = network(images)
            selector = torch.nn.functional.one_hot(target, logits.shape[-1]).to(logits.dtype)
            _, relevance = attributor(images.detach(), selector)
        pixels = relevance.detach().sum(1).float()
        return Attribution(pixels_to_patches(pixels, self.model.patch_size), pixels)
