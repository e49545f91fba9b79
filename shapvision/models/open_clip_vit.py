"""open_clip's own ``VisionTransformer`` (e.g. ``ViT-B-16``) under patch masks.

Same two formulations as :mod:`shapvision.models.timm_transformer`. open_clip's blocks use
``nn.MultiheadAttention``, where a bool mask means True = *blocked*, so masks are passed as additive
float masks ``(B * heads, T, T)``. The tower has one prefix token (CLS).
"""

import torch
import torch.nn as nn

from shapvision.models.masked_backbone import MaskedBackbone
from shapvision.models.patch_features import PatchFeatures
from shapvision.models.timm_transformer import MASKING_MODES
from shapvision.models.token_packing import TokenPacking


class OpenCLIPViTBackbone(MaskedBackbone):
    """Masked forward over ``open_clip.transformer.VisionTransformer``; pooled = CLS after ``ln_post``."""

    def __init__(self, visual: nn.Module, masking: str = "drop"):
        super().__init__()
        if masking not in MASKING_MODES:
            raise ValueError(f"masking must be one of {MASKING_MODES}, got {masking!r}")
        if (
            getattr(visual, "attn_pool", None) is not None
            or visual.pool_type != "tok"
            or visual.final_ln_after_pool
        ):
            raise ValueError(
                "only open_clip vision towers with CLS-token pooling ('tok') are supported under masks"
            )
        self.visual = visual
        self.masking = masking
        self.grid_size = tuple(visual.grid_size)
        self.patch_size = (
            visual.patch_size[0] if isinstance(visual.patch_size, tuple) else visual.patch_size
        )
        self.embed_dim = visual.conv1.out_channels
        self.num_heads = visual.transformer.resblocks[0].attn.num_heads

    def forward_patches(self, images, keep=None, masking: str | None = None) -> PatchFeatures:
        explicit_keep = keep is not None
        keep = self.validate_inputs(images, keep)
        masking = masking or self.masking
        x = self._embed(images)
        if not explicit_keep:
            out = self._run(x, None)
        elif masking == "attention":
            visible = torch.cat([keep.new_ones(keep.shape[0], 1), keep], dim=1)
            out = self._run(x, visible[:, None, :].expand(-1, x.shape[1], -1))
        else:
            packing = TokenPacking.from_keep(keep, num_prefix=1)
            out = packing.unpack(self._run(packing.pack(x), packing.attention_mask()))
        cls, tokens = out[:, 0], out[:, 1:]
        tokens = tokens * keep.unsqueeze(2).to(tokens.dtype)
        return PatchFeatures(tokens=tokens, keep=keep, prefix=cls.unsqueeze(1), pooled=cls)

    def _embed(self, images):
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)

    def _run(self, x, visible):
        """The transformer and ``ln_post`` under a bool ``(B, T, T)`` mask, True = may attend."""
        attn_mask = None
        if visible is not None and not bool(visible.all()):
            blocked = torch.zeros(visible.shape, dtype=x.dtype, device=x.device).masked_fill(
                ~visible, float("-inf")
            )
            attn_mask = blocked.repeat_interleave(self.num_heads, dim=0)
        return self.visual.ln_post(self.visual.transformer(x, attn_mask=attn_mask))
