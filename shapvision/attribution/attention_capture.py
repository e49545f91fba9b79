"""Attention probabilities of a timm ViT, captured per block (and kept in the graph for gradients).

timm's fused SDPA path never materialises the attention matrix, so the capture switches each block to
the explicit path for the duration and hooks ``attn_drop``, whose input is the post-softmax attention
``(B, heads, T, T)``; dropout is the identity in eval mode.
"""

from contextlib import contextmanager

import torch


@contextmanager
def captured_attention(backbone):
    blocks = list(backbone.model.blocks)
    maps: list[torch.Tensor] = []
    saved = [block.attn.fused_attn for block in blocks]
    hooks = [
        block.attn.attn_drop.register_forward_hook(lambda m, i, out: maps.append(out))
        for block in blocks
    ]
    for block in blocks:
        block.attn.fused_attn = False
    try:
        yield maps
    finally:
        for hook in hooks:
            hook.remove()
        for block, fused in zip(blocks, saved, strict=True):
            block.attn.fused_attn = fused
