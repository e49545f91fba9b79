"""Attention-based baselines for ViTs (written here: none of captum, pytorch-grad-cam, zennit has them).

- ``attention_last``: the last block's head-mean attention, CLS row, patch columns (Salvage's "Attn. last").
- ``rollout`` (Abnar & Zuidema 2020, as in Chefer's ``compute_rollout_attention``): per block, head mean
  + identity, rows renormalised, multiplied from ``start_layer`` on; the CLS row over the patches.
- ``game`` (Chefer, Gur, Wolf 2021a, ICCV, "Generic Attention-model Explainability", gradient-weighted attention):
  R = I; per block R += mean_heads(clamp(grad(A) * A, min=0)) @ R; output R[CLS, patches].
The CLS row exists only for backbones with a prefix token: others are refused at build time.
"""

import torch

from shapvision.attribution.attention_capture import captured_attention
from shapvision.attribution.base import Attribution, AttributionMethod


class _AttentionMethod(AttributionMethod):
    families = ("vit",)

    def __init__(self, model):
        super().__init__(model)
        self.prefix = model.backbone.num_prefix_tokens
        if self.prefix == 0:
            raise ValueError(
                f"method {self.name!r} reads the CLS row of the attention, and {model.name}'s ViT has no prefix token"
            )

    def _patch_columns(self, matrix: torch.Tensor) -> torch.Tensor:
        return matrix[:, 0, self.prefix :]


class AttentionLast(_AttentionMethod):
    name = "attention_last"
    values = "magnitude"

    @torch.no_grad()
    def explain(self, images, target, index=None):
        with captured_attention(self.model.backbone) as maps:
            self.model.logits(images)
        return Attribution(self._patch_columns(maps[-1].mean(1)))


class AttentionRollout(_AttentionMethod):
    name = "rollout"
    values = "magnitude"

    def __init__(self, model, start_layer: int = 1):
        super().__init__(model)
        self.start_layer = start_layer

    @torch.no_grad()
    def explain(self, images, target, index=None):
        with captured_attention(self.model.backbone) as maps:
            self.model.logits(images)
        start = min(self.start_layer, len(maps) - 1)
        eye = torch.eye(maps[0].shape[-1], device=images.device)
        rollout = None
        for attention in maps[start:]:
            a = attention.mean(1) + eye
            a = a / a.sum(-1, keepdim=True)
            rollout = a if rollout is None else a @ rollout
        return Attribution(self._patch_columns(rollout))


class GradientWeightedAttention(_AttentionMethod):
    name = "game"
    values = "positive"

    def explain(self, images, target, index=None):
        with torch.enable_grad(), captured_attention(self.model.backbone) as maps:
            logits = self.model.logits(images.detach().requires_grad_(True))
            score = logits.gather(1, target.view(-1, 1)).sum()
            grads = torch.autograd.grad(score, maps)
        relevance = torch.eye(maps[0].shape[-1], device=images.device).expand(
            images.shape[0], -1, -1
        )
        for attention, grad in zip(maps, grads, strict=True):
            weighted = (grad * attention).clamp_min(0).mean(1)
            relevance = relevance + weighted.detach() @ relevance
        return Attribution(self._patch_columns(relevance))
