"""MaskCLIP (Zhou, Loy, Dai, "Extract Free Dense Labels from CLIP", ECCV 2022), as the dense
per-patch image-text score SVO Tables 5-6 compare against.

The reference (``chongzhou96/MaskCLIP``, ``mmseg/models/backbones/vit.py`` with ``return_qkv`` and
``decode_heads/maskclip_head.py``) changes the last block only: each patch token's attention output is
its own value, ``out_proj(v_i)`` (the query-key attention dropped), then the block's residual and
FFN, the final norm and CLIP's projection; the per-patch score is the cosine of that embedding with
the caption's. Key smoothing and prompt denoising are off, as in the reference's defaults; ECLIP's
variant with a cos(k_cls, k_i) factor is not this method. Equivalently: the last block run with an
attention mask that lets every token see only itself (the test checks this identity).
Cost: one forward per image-caption pair, no backward.
"""

import torch

from shapvision.attribution.base import Attribution, AttributionMethod
from shapvision.attribution.clip_vision_blocks import (
    VisionTowerBlocks,
    merge_heads,
    target_captions,
)


class MaskCLIP(AttributionMethod):
    name = "maskclip"
    families = ("vit", "other")
    library = "shapvision (from the MaskCLIP reference)"

    def __init__(self, model):
        super().__init__(model)
        self.tower = VisionTowerBlocks(model, self.name)

    @torch.no_grad()
    def explain(self, images, target, index=None):
        tower = self.tower
        x, rope = tower.embed(images)
        x = tower.run(x, rope, tower.blocks[:-1])
        last = tower.blocks[-1]
        _, _, v = tower.queries_keys_values(last, tower.attention_input(last, x), rope)
        x = tower.add_attention(last, x, tower.attention_output(last, merge_heads(v)))
        patches = tower.token_embeddings(tower.add_mlp(last, x))[:, 1:]
        text = target_captions(self.model, target)
        return Attribution((patches * text.unsqueeze(1)).sum(-1))
