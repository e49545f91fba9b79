"""open_clip's own ``VisionTransformer`` (e.g. ``ViT-B-16``) under patch masks.

Same two formulations as :mod:`shapvision.models.timm_transformer`. open_clip's blocks use
``nn.MultiheadAttention``, where a bool mask means True = *blocked*, so masks are passed as additive
float masks ``(B * heads, T, T)``. The tower has one prefix token (CLS); ``drop_prefix_tokens`` removes
it after position embedding (SVO's "remove ... [cls]"), so only patch tokens enter the blocks and
the output has no pooled feature.
"""

import torch
import torch.nn as nn

from shapvision.models.masked_backbone import MaskedBackbone, is_one_image_expanded
from shapvision.models.patch_features import PatchFeatures
from shapvision.models.timm_transformer import MASKING_MODES
from shapvision.models.token_packing import TokenPacking


class OpenCLIPViTBackbone(MaskedBackbone):
    """Masked forward over ``open_clip.transformer.VisionTransformer``; pooled = CLS after ``ln_post``."""

    def __init__(self, visual: nn.Module, masking: str = "drop", drop_prefix_tokens: bool = False):
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
        self.drop_prefix_tokens = drop_prefix_tokens
        self.num_prefix_tokens = 0 if drop_prefix_tokens else 1

    def forward_patches(self, images, keep=None, masking: str | None = None) -> PatchFeatures:
        explicit_keep = keep is not None
        keep = self.validate_inputs(images, keep)
        masking = masking or self.masking
        x = self._embed(images)
        prefix = self.num_prefix_tokens
        if not explicit_keep:
            out = self._run(x, None)
        elif masking == "attention":
            visible = torch.cat([keep.new_ones(keep.shape[0], prefix), keep], dim=1)
            visible = visible[:, None, :].expand(-1, x.shape[1], -1)
            # every token may attend to itself, so a removed token's softmax row is never empty
            # (without a prefix token, an all-removed mask would otherwise give NaN rows)
            diagonal = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
            out = self._run(x, visible | diagonal)
        else:
            packing = TokenPacking.from_keep(keep, num_prefix=prefix)
            if packing.rows == 0:  # no prefix token and no kept patch anywhere: all features zero
                out = torch.zeros_like(x)
            else:
                out = packing.unpack(self._run(packing.pack(x), packing.attention_mask()))
        tokens = out[:, prefix:] * keep.unsqueeze(2).to(out.dtype)
        if not prefix:
            return PatchFeatures(tokens=tokens, keep=keep)
        cls = out[:, 0]
        return PatchFeatures(tokens=tokens, keep=keep, prefix=cls.unsqueeze(1), pooled=cls)

    def _embed(self, images):
        if is_one_image_expanded(images):
            return self._embed(images[:1]).expand(images.shape[0], -1, -1)
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x[:, 1:] if self.drop_prefix_tokens else x)

    def _run(self, x, visible):
        """The transformer and ``ln_post`` under a bool ``(B, T, T)`` mask, True = may attend."""
        attn_mask = None
        if visible is not None and not bool(visible.all()):
            blocked = torch.zeros(visible.shape, dtype=x.dtype, device=x.device).masked_fill(
                ~visible, float("-inf")
            )
            attn_mask = blocked.repeat_interleave(self.num_heads, dim=0)
        return self.visual.ln_post(self.visual.transformer(x, attn_mask=attn_mask))
