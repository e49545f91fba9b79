"""timm vision transformers (``VisionTransformer`` and ``Eva``, incl. open_clip's EVA02 trunk) under patch masks.

Two formulations of "patch i is absent", identical in exact arithmetic:
- ``masking="drop"`` (default): after position embedding, only the prefix tokens and the kept patch
  tokens enter the blocks (MAE-style gather, samples packed into shared rows with block-diagonal
  attention, see :mod:`token_packing`; Eva's rotary embedding is gathered with them).
- ``masking="attention"`` (the ViT-Shapley reference): all tokens run, removed patches are blocked
  as attention keys in every layer; their own outputs are discarded.
Every other op in a block is per-token, so the prefix and kept outputs agree; dropping does work
proportional to the kept count only.
"""

import torch
import torch.nn as nn
from timm.models.eva import Eva

from shapvision.models.masked_backbone import MaskedBackbone, is_one_image_expanded
from shapvision.models.patch_features import PatchFeatures
from shapvision.models.token_packing import TokenPacking

MASKING_MODES = ("drop", "attention")


def _to_2tuple(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class TimmTransformerBackbone(MaskedBackbone):
    """Masked forward over a timm ``VisionTransformer`` or ``Eva`` instance."""

    def __init__(self, model: nn.Module, masking: str = "drop", drop_prefix_tokens: bool = False):
        super().__init__()
        if masking not in MASKING_MODES:
            raise ValueError(f"masking must be one of {MASKING_MODES}, got {masking!r}")
        for attr in ("patch_embed", "_pos_embed", "blocks", "norm", "num_prefix_tokens"):
            if not hasattr(model, attr):
                raise TypeError(f"{type(model).__name__} is not a timm ViT/Eva model (no `{attr}`)")
        if getattr(model, "attn_pool", None) is not None or model.global_pool not in (
            "token",
            "avg",
            "",
        ):
            raise ValueError(
                f"global_pool={model.global_pool!r} is not supported under masks; use 'token' or 'avg'"
            )
        if getattr(model, "dynamic_img_size", False):
            raise ValueError(
                "dynamic_img_size models are not supported: fix img_size when creating the model"
            )
        self.model = model
        self.masking = masking
        self.is_eva = isinstance(model, Eva)
        if self.is_eva and getattr(model, "rope_mixed", False):
            raise ValueError(
                "Eva models with depth-dependent ('mixed') rotary embeddings are not supported"
            )
        self.grid_size = tuple(model.patch_embed.grid_size)
        self.patch_size = _to_2tuple(model.patch_embed.patch_size)[0]
        self.embed_dim = model.embed_dim
        # SVO's design: the CLS / register tokens are removed after position embedding, so only patch
        # tokens enter the blocks (pretrained weights load unchanged; the prefix embeddings go unused).
        self.drop_prefix_tokens = drop_prefix_tokens
        if drop_prefix_tokens and self.is_eva:
            # Eva's attention leaves its first num_prefix_tokens positions unrotated; with the prefix
            # gone every position is a patch and takes its rotary embedding. This changes the model's
            # own blocks: the wrapped trunk no longer runs with its prefix tokens.
            for block in model.blocks:
                block.attn.num_prefix_tokens = 0
        self.num_prefix_tokens = 0 if drop_prefix_tokens else model.num_prefix_tokens

    def forward_patches(self, images, keep=None, masking: str | None = None) -> PatchFeatures:
        explicit_keep = keep is not None
        keep = self.validate_inputs(images, keep)
        masking = masking or self.masking
        if masking not in MASKING_MODES:
            raise ValueError(f"masking must be one of {MASKING_MODES}, got {masking!r}")
        x, rope = self._embed(images)
        if not explicit_keep:
            prefix, tokens = self._split(self._run_blocks(x, rope, None))
        elif masking == "attention":
            prefix, tokens = self._run_with_attention_mask(x, rope, keep)
        else:
            prefix, tokens = self._run_with_token_dropping(x, rope, keep)
        tokens = tokens * keep.unsqueeze(2).to(tokens.dtype)
        return PatchFeatures(
            tokens=tokens, keep=keep, prefix=prefix, pooled=self._pool(prefix, tokens, keep)
        )

    def _embed(self, images):
        if is_one_image_expanded(images):
            x, rope = self._embed(images[:1])
            return x.expand(images.shape[0], -1, -1), rope
        out = self.model._pos_embed(self.model.patch_embed(images))
        x, rope = out if self.is_eva else (out, None)
        if self.drop_prefix_tokens:
            x = x[:, self.model.num_prefix_tokens :]
        return self.model.norm_pre(x), rope

    def _run_blocks(self, x, rope, attn_mask):
        for block in self.model.blocks:
            x = (
                block(x, rope=rope, attn_mask=attn_mask)
                if self.is_eva
                else block(x, attn_mask=attn_mask)
            )
        return self.model.norm(x)

    def _split(self, x):
        return x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens :]

    def _run_with_attention_mask(self, x, rope, keep):
        prefix_keep = keep.new_ones(keep.shape[0], self.num_prefix_tokens)
        attn_mask = torch.cat([prefix_keep, keep], dim=1)[:, None, None, :]
        if not self.num_prefix_tokens:
            # every token may attend to itself, so a removed token's softmax row is never empty
            # (an all-removed mask would otherwise give NaN rows); kept tokens attend as before
            diagonal = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
            attn_mask = attn_mask | diagonal
        return self._split(self._run_blocks(x, rope, attn_mask))

    def _run_with_token_dropping(self, x, rope, keep):
        packing = TokenPacking.from_keep(keep, self.num_prefix_tokens)
        if packing.rows == 0:  # no prefix tokens and no kept patch anywhere: all features are zero
            return self._split(torch.zeros_like(x))
        packed_rope = None if rope is None else self._packed_rope(rope, packing)
        packed = self._run_blocks(
            packing.pack(x), packed_rope, packing.attention_mask().unsqueeze(1)
        )
        return self._split(packing.unpack(packed))

    def _packed_rope(self, rope, packing):
        """Eva's rotary embedding per packed position, for all but each row's leading prefix tokens.

        Eva leaves a row's first ``num_prefix_tokens`` unrotated and rotates all later ones; a packed
        row's later samples have prefix tokens too, which get the identity rotation (sin 0, cos 1).
        """
        table = rope.reshape(-1, rope.shape[-1])
        sin, cos = table[:1].chunk(2, dim=-1)
        identity = torch.cat([torch.zeros_like(sin), torch.ones_like(cos)], dim=-1)
        per_position = torch.cat([identity, table])[packing.patch + 1]
        return per_position[:, self.num_prefix_tokens :].unsqueeze(1)

    def _pool(self, prefix, tokens, keep):
        if self.model.global_pool == "token" and self.num_prefix_tokens:
            pooled = prefix[:, 0]
        else:
            counts = keep.sum(1, keepdim=True).clamp_min(1).to(tokens.dtype)
            pooled = tokens.sum(1) / counts
        return self.model.fc_norm(pooled)
