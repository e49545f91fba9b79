"""The ViT-Shapley explainer head: extra transformer block(s) -> LayerNorm -> 3-layer MLP per patch.

As in Covert et al. (2023): the extra blocks see the prefix and patch tokens, have no first
LayerNorm (the backbone's final norm already normalised them), and the prefix rows are dropped
afterwards, leaving one K-vector per patch. Their ablation found one extra, unfrozen block best.
"""

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block


class ExplainerHead(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        num_outputs: int,
        num_blocks: int = 1,
        num_heads: int | None = None,
        mlp_hidden_dim: int = 3072,
    ):
        super().__init__()
        num_heads = num_heads or max(1, embed_dim // 64)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        blocks = []
        for _ in range(num_blocks):
            block = Block(embed_dim, num_heads, mlp_ratio=4.0, qkv_bias=True)
            block.norm1 = nn.Identity()
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, mlp_hidden_dim),
            nn.GELU(),
            nn.Linear(mlp_hidden_dim, mlp_hidden_dim),
            nn.GELU(),
            nn.Linear(mlp_hidden_dim, num_outputs),
        )

    def forward(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Patch tokens ``(B, N, L)`` (and prefix tokens ``(B, P, L)``) -> per-patch outputs ``(B, N, K)``."""
        num_prefix = 0 if prefix is None else prefix.shape[1]
        x = tokens if prefix is None else torch.cat([prefix, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.mlp(self.norm(x[:, num_prefix:]))
