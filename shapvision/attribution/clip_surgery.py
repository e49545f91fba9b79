"""CLIP Surgery (Li, Zhang, Ye, Lin, Chen, Zhu, "CLIP Surgery for Better Explainability with
Enhancement in Open-Vocabulary Tasks", 2023), on the open_clip towers.

From the reference (``xmed-lab/CLIP_Surgery``, ``clip/clip_surgery_model.py`` and ``clip/clip.py``):
- *architecture surgery*: the last ``surgery_blocks`` (6 of ViT-B's 12) get a second path. Its attention
  is v-v self-attention (queries = keys = values, per head, the block's own scale) on LN1 of the
  *original* path, through the block's output projection, added residually with **no FFN**; the path
  starts from the tokens entering the first such block. The output takes the new path's patch tokens
  and the original CLS, then the final norm and CLIP's projection.
- *feature surgery*, one caption per image (retrieval): the per-patch score is the unit patch
  embedding dotted with the caption's unit embedding minus that of the empty string ""
  (``redundant="empty_caption"``, the reference's single-text use); ``"none"`` keeps the raw cosine.
Ours, documented: the reference embeds "" with its 85-template ImageNet prompt ensemble; captions are
not class names, so we embed the empty caption alone. The reference min-max normalises each map for
display; the values here are unnormalised (the metrics rank them). A tower shallower than
``surgery_blocks`` gets the surgery on every block.
Cost: one forward per image-caption pair (the second path is cheaper than a block), no backward.
"""

import torch

from shapvision.attribution.base import Attribution, AttributionMethod
from shapvision.attribution.clip_vision_blocks import (
    VisionTowerBlocks,
    attend,
    merge_heads,
    target_captions,
)

REDUNDANT = ("empty_caption", "none")


class CLIPSurgery(AttributionMethod):
    name = "clip_surgery"
    families = ("vit", "other")
    library = "shapvision (from the CLIP Surgery reference)"

    def __init__(self, model, surgery_blocks: int = 6, redundant: str = "empty_caption"):
        super().__init__(model)
        self.tower = VisionTowerBlocks(model, self.name)
        if surgery_blocks < 1:
            raise ValueError(
                f"method_options.clip_surgery.surgery_blocks must be >= 1, got {surgery_blocks}"
            )
        if redundant not in REDUNDANT:
            raise ValueError(
                f"method_options.clip_surgery.redundant must be one of {REDUNDANT}, got {redundant!r}"
            )
        self.surgery_blocks = min(surgery_blocks, self.tower.depth)
        self.redundant = redundant
        self._empty_caption: torch.Tensor | None = None

    def redundant_feature(self, device) -> torch.Tensor | None:
        if self.redundant == "none":
            return None
        if self._empty_caption is None:
            module = self.model.module
            with torch.no_grad():
                tokens = module.tokenize([""]).to(device)
                self._empty_caption = module.text_features(tokens)[0]
        return self._empty_caption

    def surgery_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The tokens leaving the tower with the second path's patches and the original CLS ``(B, T, C)``."""
        tower = self.tower
        x, rope = tower.embed(images)
        start = tower.depth - self.surgery_blocks
        x = tower.run(x, rope, tower.blocks[:start])
        surgery = x
        for block in tower.blocks[start:]:
            scale, h = tower.scale(block), tower.attention_input(block, x)
            q, k, v = tower.queries_keys_values(block, h, rope)
            original = tower.attention_output(block, merge_heads(attend(q, k, v, scale)))
            value_value = tower.attention_output(block, merge_heads(attend(v, v, v, scale)))
            x = tower.add_mlp(block, tower.add_attention(block, x, original))
            surgery = tower.add_attention(block, surgery, value_value)
        return torch.cat([x[:, :1], surgery[:, 1:]], dim=1)

    @torch.no_grad()
    def explain(self, images, target, index=None):
        patches = self.tower.token_embeddings(self.surgery_tokens(images))[:, 1:]
        text = target_captions(self.model, target)
        redundant = self.redundant_feature(images.device)
        if redundant is not None:
            text = text - redundant
        return Attribution((patches * text.unsqueeze(1)).sum(-1))
