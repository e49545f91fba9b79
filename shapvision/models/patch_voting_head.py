"""The SVO patch-voting head: each patch votes a K-vector Phi[n]; the logits are the sum of the votes.

Because the logits are the sum of per-patch values, the model's outputs are efficient by construction
(``Phi.sum(1) == logits``); removed patches cast no vote, so v(S) = sum of Phi over kept patches.
"""

import torch
import torch.nn as nn


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
