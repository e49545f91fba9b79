"""CheferLRP: Chefer, Gur, Wolf, "Transformer Interpretability Beyond Attention Visualization" (CVPR
2021), the "transformer attribution" of SVO Tables 2-3, for timm ViTs with a CLS token and a linear head.

Relevance is propagated from the one-hot target at the head's output down every block with the
reference's rules (``hila-chefer/Transformer-Explainability``, ``baselines/ViT/ViT_LRP.py`` and
``modules/layers_ours.py``; shared/table_methods.md, section 1):
- Linear layers: alpha1-beta0 (only positive contributions, w+ x+ + w- x-; biases take none);
- LayerNorm, GELU, softmax, dropout and the attention's scale pass relevance through unchanged;
- the matmuls A V and Q K^T: the z-rule to both operands, each then halved;
- a residual sum: the z-rule, then each branch rescaled to its |sum| share of the total (conserved);
  the copy of a token stream into two branches sums their relevances.
Per block, R_A = the relevance of the attention probabilities and grad_A = the gradient of the target's
logit with respect to them; A_bar = mean over heads of clamp(grad_A * R_A, min 0); the map is the
CLS row over the patches of the rollout prod_l (A_bar_l + I), from ``start_layer`` on (1, the reference
script's default), **not** row-normalised, unlike plain rollout (as in the reference's file).
Ours: sums of the residual rule are per image (the reference runs batch 1, where they are the same);
LayerScale, q / k norms and the attention's output norm, absent from the reference's ViT, pass
relevance through unchanged. Values: "positive". Cost: one forward, one backward and one relevance pass.
"""

import torch
import torch.nn as nn

from shapvision.attribution.attention_methods import _AttentionMethod
from shapvision.attribution.base import Attribution
from shapvision.attribution.clip_vision_blocks import merge_heads, split_heads

EPSILON = 1e-9


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b with b's magnitude kept at least 1e-9 and 0 where b is 0 (the reference's ``safe_divide``)."""
    den = b.clamp(min=EPSILON) + b.clamp(max=EPSILON)
    den = den + den.eq(0).to(den.dtype) * EPSILON
    return a / den * b.ne(0).to(b.dtype)


def linear_relevance(
    x: torch.Tensor, weight: torch.Tensor, relevance: torch.Tensor
) -> torch.Tensor:
    """alpha1-beta0 through ``y = x W^T``: each output's relevance shared by its positive contributions."""
    positive_w, negative_w = weight.clamp(min=0), weight.clamp(max=0)
    positive_x, negative_x = x.clamp(min=0), x.clamp(max=0)
    z = positive_x @ positive_w.T + negative_x @ negative_w.T
    s = safe_divide(relevance, z)
    return positive_x * (s @ positive_w) + negative_x * (s @ negative_w)


def residual_relevance(x: torch.Tensor, branch: torch.Tensor, relevance: torch.Tensor):
    """The z-rule through ``x + branch``, each side rescaled to its |sum| share of the total, per image."""
    s = safe_divide(relevance, x + branch)
    a, b = x * s, branch * s
    dims = tuple(range(1, relevance.dim()))
    a_sum, b_sum = a.sum(dims, keepdim=True), b.sum(dims, keepdim=True)
    total = relevance.sum(dims, keepdim=True)
    shares = a_sum.abs() + b_sum.abs()
    a = a * safe_divide(safe_divide(a_sum.abs(), shares) * total, a_sum)
    b = b * safe_divide(safe_divide(b_sum.abs(), shares) * total, b_sum)
    return a, b


def copy_relevance(x: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """A stream copied into two branches: their relevances add (zero where the stream is zero)."""
    return x * (safe_divide(first, x) + safe_divide(second, x))


def matmul_relevance(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor):
    """The z-rule through ``a @ b`` to both operands, each halved (the reference's A V and Q K^T)."""
    s = safe_divide(relevance, a @ b)
    return a * (s @ b.transpose(-1, -2)) / 2, b * (a.transpose(-1, -2) @ s) / 2


class CheferLRP(_AttentionMethod):
    name = "chefer_lrp"
    values = "positive"
    library = "shapvision (rules of Chefer et al.'s reference)"

    def __init__(self, model, start_layer: int = 1):
        super().__init__(model)
        head = getattr(getattr(model.module, "net", None), "head", None)
        if not isinstance(head, nn.Linear) or model.backbone.model.global_pool != "token":
            raise ValueError(
                f"method 'chefer_lrp' propagates relevance from a linear head on the CLS token, and {model.name} "
                f"has a {type(head).__name__} head on global_pool={model.backbone.model.global_pool!r}; "
                "explain a Classifier or Surrogate ViT"
            )
        if model.backbone.drop_prefix_tokens:
            raise ValueError(
                f"method 'chefer_lrp' needs {model.name}'s CLS token, which is dropped"
            )
        self.head = head
        self.start_layer = start_layer

    def forward_saved(self, images: torch.Tensor) -> tuple[torch.Tensor, list[dict], torch.Tensor]:
        """The classifier's forward block by block, keeping what the relevance pass needs."""
        vit = self.model.backbone.model
        x = self.model.backbone._embed(images)[0]
        saved = []
        for block in vit.blocks:
            attn = block.attn
            normed = block.norm1(x)
            q, k, v = attn.qkv(normed).chunk(3, dim=-1)
            q, k, v = (split_heads(t, attn.num_heads) for t in (q, k, v))
            q, k = attn.q_norm(q), attn.k_norm(k)
            probabilities = ((q * attn.scale) @ k.transpose(-1, -2)).softmax(-1)
            mixed = merge_heads(probabilities @ v)
            branch = block.ls1(attn.proj(attn.norm(mixed)))
            middle = x + branch
            normed2 = block.norm2(middle)
            hidden = block.mlp.act(block.mlp.fc1(normed2))
            mlp_branch = block.ls2(block.mlp.fc2(block.mlp.norm(hidden)))
            saved.append(
                dict(
                    x=x, normed=normed, q=q, k=k, v=v, probabilities=probabilities, mixed=mixed,
                    branch=branch, middle=middle, normed2=normed2, hidden=hidden, mlp_branch=mlp_branch,
                )
            )  # fmt: skip
            x = middle + mlp_branch
        pooled = vit.fc_norm(vit.norm(x)[:, 0])
        return self.head(pooled), saved, pooled

    def block_relevance(self, block: nn.Module, s: dict, relevance: torch.Tensor):
        """Relevance at the block's input, and that of its attention probabilities R_A."""
        attn, heads = block.attn, block.attn.num_heads
        keep, mlp = residual_relevance(s["middle"], s["mlp_branch"], relevance)
        mlp = linear_relevance(s["hidden"], block.mlp.fc2.weight, mlp)
        mlp = linear_relevance(s["normed2"], block.mlp.fc1.weight, mlp)
        relevance = copy_relevance(s["middle"], keep, mlp)
        keep, branch = residual_relevance(s["x"], s["branch"], relevance)
        branch = split_heads(linear_relevance(s["mixed"], attn.proj.weight, branch), heads)
        attention, values = matmul_relevance(s["probabilities"], s["v"], branch)
        queries, keys = matmul_relevance(s["q"], s["k"].transpose(-1, -2), attention)
        qkv = torch.cat([merge_heads(t) for t in (queries, keys.transpose(-1, -2), values)], -1)
        branch = linear_relevance(s["normed"], attn.qkv.weight, qkv)
        return copy_relevance(s["x"], keep, branch), attention

    def explain(self, images, target, index=None):
        blocks = list(self.model.backbone.model.blocks)
        with torch.enable_grad():
            logits, saved, pooled = self.forward_saved(images.detach().requires_grad_(True))
            score = logits.gather(1, target.view(-1, 1)).sum()
            grads = torch.autograd.grad(score, [s["probabilities"] for s in saved])
        with torch.no_grad():
            saved = [{key: value.detach() for key, value in s.items()} for s in saved]
            one_hot = torch.zeros_like(logits).scatter_(1, target.view(-1, 1), 1.0)
            relevance = torch.zeros_like(saved[-1]["x"])
            relevance[:, 0] = linear_relevance(pooled.detach(), self.head.weight, one_hot)
            attention_relevance = [None] * len(blocks)
            for i in reversed(range(len(blocks))):
                relevance, attention_relevance[i] = self.block_relevance(
                    blocks[i], saved[i], relevance
                )
            tokens = relevance.shape[1]
            eye = torch.eye(tokens, device=images.device).expand(images.shape[0], -1, -1)
            start = min(self.start_layer, len(blocks) - 1)
            rollout = None
            for grad, r in zip(grads[start:], attention_relevance[start:], strict=True):
                layer = (grad * r).clamp(min=0).mean(1) + eye
                rollout = layer if rollout is None else layer @ rollout
        return Attribution(self._patch_columns(rollout))
