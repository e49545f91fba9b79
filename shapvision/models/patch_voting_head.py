"""The SVO patch-voting head: each patch votes a K-vector Phi[n]; the logits are the sum of the votes.

Because the logits are the sum of per-patch values, the model's outputs are efficient by construction
(``Phi.sum(1) == logits``); removed patches cast no vote, so v(S) = sum of Phi over kept patches.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchVotingHead(nn.Module):
    def __init__(self, embed_dim: int, num_outputs: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.proj = nn.Linear(embed_dim, num_outputs)

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Patch tokens ``(B, N, L)`` -> votes Phi ``(B, N, K)``, zero at removed patches."""
        phi = self.proj(self.norm(tokens))
        if keep is not None:
            phi = phi * keep.unsqueeze(2).to(phi.dtype)
        return phi

    def summed_votes(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The sum of the kept patches' votes ``(B, K)``, equal to ``forward(tokens, keep).sum(1)``.

        A vote is affine in the normed token, so the sum is W (sum of kept normed tokens) + |S| b:
        one projection per sample instead of one per patch, which matters for 1,000 classes.
        """
        kept = keep.unsqueeze(2).to(tokens.dtype)
        normed_sum = (self.norm(tokens) * kept).sum(1)
        counts = kept.sum(1)
        return F.linear(normed_sum, self.proj.weight) + counts * self.proj.bias
