"""AttCAT (Qiang, Pan, Li, Zhu, "AttCAT: Explaining Transformers via Attentive Class Activation
Tokens", NeurIPS 2022), for timm ViTs with a CLS token.

A token's class activation at block l is its output feature times the gradient of the target's
logit with respect to it, h^l_i * dy/dh^l_i (the CAT, summed over the feature dimension); AttCAT
weights it by the head-mean attention the CLS token pays that token in the same block and sums over
the blocks: AttCAT_i = sum_l mean_heads(A^l[CLS, i]) * sum_d h^l_{i,d} dy/dh^l_{i,d}. Signed: a
negative value argues against the target. No library implements it; written from the paper's
equations (its code is not public in a form we could build on, shared/table_methods.md).
"""

import torch

from shapvision.attribution.attention_capture import captured_attention
from shapvision.attribution.attention_methods import _AttentionMethod
from shapvision.attribution.base import Attribution


class AttCAT(_AttentionMethod):
    name = "attcat"

    def explain(self, images, target, index=None):
        blocks = list(self.model.backbone.model.blocks)
        features: list[torch.Tensor] = []
        hooks = [
            block.register_forward_hook(lambda module, inputs, out: features.append(out))
            for block in blocks
        ]
        try:
            with torch.enable_grad(), captured_attention(self.model.backbone) as maps:
                logits = self.model.logits(images.detach().requires_grad_(True))
                score = logits.gather(1, target.view(-1, 1)).sum()
                grads = torch.autograd.grad(score, features)
        finally:
            for hook in hooks:
                hook.remove()
        relevance = torch.zeros(features[0].shape[:2], device=images.device)
        for feature, grad, attention in zip(features, grads, maps, strict=True):
            activation = (feature.detach() * grad).sum(-1)
            relevance = relevance + attention.detach().mean(1)[:, 0, :] * activation
        return Attribution(relevance[:, self.prefix :])
