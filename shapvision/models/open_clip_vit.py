"""open_clip's own ``VisionTransformer`` (e.g. ``ViT-B-16``) under patch masks.

Same two formulations as :mod:`shapvision.models.timm_transformer`. open_clip's blocks use
``nn.MultiheadAttention``, where a bool mask means True = *blocked*, so masks are passed as additive
float masks ``(B * heads, T, T)``.
"""

import torch
import torch.nn as nn

from shapvision.models.masked_backbone import MaskedBackbone
from shapvision.models.patch_features import PatchFeatures
from shapvision.models.timm_transformer import MASKING_MODES
from shapvision.models.token_dropping import (
    bucket_by_kept_count,
    gather_tokens,
    kept_indices,
    scatter_tokens,
)


class OpenCLIPViTBackbone(MaskedBackbone):
    """Masked forward over ``open_clip.transformer.VisionTransformer``; pooled = CLS after ``ln_post``."""

    def __init__(self, visual: nn.Module, masking: str = "drop", max_buckets: int = 8):
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
        self.max_buckets = max_buckets
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
            cls, tokens = self._run(x, None)
        elif masking == "attention":
            visible = torch.cat([keep.new_ones(keep.shape[0], 1), keep], dim=1)
            cls, tokens = self._run(x, visible)
        else:
            cls, tokens = self._run_with_token_dropping(x, keep)
        tokens = tokens * keep.unsqueeze(2).to(tokens.dtype)
        return PatchFeatures(tokens=tokens, keep=keep, prefix=cls.unsqueeze(1), pooled=cls)

    def _embed(self, images):
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(x)

    def _run(self, x, visible):
        attn_mask = None
        if visible is not None and not bool(visible.all()):
            blocked = torch.zeros(visible.shape, dtype=x.dtype, device=x.device).masked_fill(
                ~visible, float("-inf")
            )
            seq = x.shape[1]
            attn_mask = (
                blocked[:, None, None, :].expand(-1, self.num_heads, seq, -1).reshape(-1, seq, seq)
            )
        x = self.visual.ln_post(self.visual.transformer(x, attn_mask=attn_mask))
        return x[:, 0], x[:, 1:]

    def _run_with_token_dropping(self, x, keep):
        batch, num_patches = keep.shape
        cls_out = x.new_zeros(batch, x.shape[2])
        tokens_out = x.new_zeros(batch, num_patches, x.shape[2])
        for samples in bucket_by_kept_count(keep, self.max_buckets):
            index, valid = kept_indices(keep[samples])
            sub = x[samples]
            kept = torch.cat([sub[:, :1], gather_tokens(sub[:, 1:], index)], dim=1)
            visible = torch.cat([valid.new_ones(valid.shape[0], 1), valid], dim=1)
            cls, kept_tokens = self._run(kept, visible)
            cls_out[samples] = cls
            tokens_out[samples] = scatter_tokens(kept_tokens, index, valid, num_patches)
        return cls_out, tokens_out
