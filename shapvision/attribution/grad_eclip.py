"""Grad-ECLIP (Zhao, Wang, Chan, Qi, "Gradient-based Visual Explanation for Transformer-based CLIP",
ICML 2024; the "ECLIP" rows of SVO Tables 5-6), on the open_clip towers.

From the reference (``Cyang-Zhao/Grad-Eclip``, ``grad_eclip_image.ipynb``): the last ``layers`` blocks
(1 by default) are recomputed with **one attention head over all channels** (scale C^-1/2) and their
attention output O (before the output projection) kept; the score is c = cos(image embedding, caption
embedding) of that forward. Per block, g = dc/dO at the CLS row; lambda_i = the min-max normalised
cosine of the CLS query with patch i's key (``key_similarity``; off: lambda = 1); the map is
ReLU(sum_d g_d v_{i,d} lambda_i), summed over the blocks. On EVA02 the keys the cosine reads are the
rotated ones the attention uses (``rotated_keys``, ours: the reference's CLIP has no rotary embedding).
The reference resizes inputs to multiples of 16 and interpolates the position embedding; our towers
take the data's fixed size, so no resize. Values are "positive" (a ReLU map).
Cost: one forward and one backward per image-caption pair.
"""

import torch
import torch.nn.functional as F

from shapvision.attribution.base import Attribution, AttributionMethod
from shapvision.attribution.clip_vision_blocks import (
    VisionTowerBlocks,
    attend,
    merge_heads,
    target_captions,
)


def min_max(values: torch.Tensor) -> torch.Tensor:
    """Per row to [0, 1]; a constant row becomes all ones (every patch equally similar)."""
    low = values.min(-1, keepdim=True).values
    span = values.max(-1, keepdim=True).values - low
    return torch.where(span > 0, (values - low) / span.clamp_min(1e-12), torch.ones_like(values))


class GradECLIP(AttributionMethod):
    name = "grad_eclip"
    families = ("vit", "other")
    library = "shapvision (from the Grad-ECLIP reference)"
    values = "positive"

    def __init__(
        self, model, layers: int = 1, key_similarity: bool = True, rotated_keys: bool = True
    ):
        super().__init__(model)
        self.tower = VisionTowerBlocks(model, self.name)
        if not 1 <= layers <= self.tower.depth:
            raise ValueError(
                f"method_options.grad_eclip.layers must be in 1..{self.tower.depth} (the vision tower's "
                f"depth), got {layers}"
            )
        self.layers, self.key_similarity, self.rotated_keys = layers, key_similarity, rotated_keys

    def explain(self, images, target, index=None):
        tower = self.tower
        with torch.no_grad():
            x, rope = tower.embed(images)
            x = tower.run(x, rope, tower.blocks[: tower.depth - self.layers])
        kept = []
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            for block in tower.blocks[tower.depth - self.layers :]:
                h = tower.attention_input(block, x)
                q, k, v = map(merge_heads, tower.queries_keys_values(block, h, rope))
                o = attend(q, k, v, v.shape[-1] ** -0.5)
                if not self.rotated_keys:
                    q, k, _ = map(merge_heads, tower.queries_keys_values(block, h, rope, False))
                kept.append((o, q.detach(), k.detach(), v.detach()))
                x = tower.add_mlp(
                    block, tower.add_attention(block, x, tower.attention_output(block, o))
                )
            text = target_captions(self.model, target)
            score = (tower.cls_embedding(x) * text).sum()
            grads = torch.autograd.grad(score, [o for o, *_ in kept])
        values = torch.zeros(images.shape[0], x.shape[1] - 1, device=images.device)
        for grad, (_, q, k, v) in zip(grads, kept, strict=True):
            contribution = (grad[:, :1] * v[:, 1:]).sum(-1)
            if self.key_similarity:
                cosine = (F.normalize(q[:, :1], dim=-1) * F.normalize(k[:, 1:], dim=-1)).sum(-1)
                contribution = contribution * min_max(cosine)
            values = values + contribution.clamp_min(0)
        return Attribution(values)
