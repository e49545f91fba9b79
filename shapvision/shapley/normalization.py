"""Additive efficient normalization (Ruiz et al. 1998; FastSHAP, ViT-Shapley).

Projects any attribution onto the efficiency constraint ``sum_i phi_i = v(N) - v(empty)`` by
spreading the gap evenly over the players: the closest point in L2 on that hyperplane.
"""

import torch


def additive_efficient_normalization(
    phi: torch.Tensor, v_full: torch.Tensor, v_empty: torch.Tensor, *, player_dim: int = -2
) -> torch.Tensor:
    """``phi + ((v_full - v_empty) - phi.sum(player_dim)) / N``.

    ``phi`` is ``(..., N, K)`` by the suite's convention (players on ``player_dim=-2``), with
    ``v_full`` / ``v_empty`` broadcastable to ``(..., K)``; a 1-D ``phi`` ``(N,)`` takes scalar values.
    """
    if phi.dim() == 1:
        player_dim = 0
    num_players = phi.shape[player_dim]
    totals = phi.sum(player_dim)
    try:
        gap = torch.broadcast_to(v_full - v_empty, totals.shape) - totals
    except RuntimeError as err:
        raise ValueError(
            f"v_full {tuple(torch.as_tensor(v_full).shape)} and v_empty {tuple(torch.as_tensor(v_empty).shape)} "
            f"must broadcast to phi summed over players {tuple(totals.shape)} (phi is {tuple(phi.shape)}, "
            f"players on dim {player_dim})"
        ) from err
    return phi + gap.unsqueeze(player_dim) / num_players
