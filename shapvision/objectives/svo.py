"""The SVO Shapley loss (Fan et al. 2026, Eq. 13).

The model's own votes Phi(x) (B, N, K) define the value function v(S) = sum over kept patches of the
votes computed on the masked input. The loss asks the unmasked votes to predict it additively:
``(v_y(S) - 1_S^T Phi(x)[:, y])^2`` for sampled masks S and classes y; v(empty) = 0 by construction.
"""

import torch


def svo_shapley_loss(
    phi_full: torch.Tensor,
    masked_values: torch.Tensor,
    masks: torch.Tensor,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared gap between v(S) and 1_S^T Phi.

    phi_full ``(B, N, K)``; masked_values ``(B, M, K)`` = v(S) from the masked forward; masks ``(B, M, N)``;
    classes ``(B, M)`` picks one class per mask (Eq. 13), or None for all classes.
    """
    additive = masks.to(phi_full.dtype) @ phi_full
    gap = masked_values - additive
    if classes is not None:
        gap = gap.gather(-1, classes.unsqueeze(-1)).squeeze(-1)
    return gap.pow(2).mean()


def svo_clip_shapley_loss(
    votes: torch.Tensor,
    masked_sums: torch.Tensor,
    text: torch.Tensor,
    masks: torch.Tensor,
    units: torch.Tensor | float,
    captions: torch.Tensor | None = None,
) -> torch.Tensor:
    """SVO-CLIP's Eq. 13 in contrastive-logit units, over captions of the batch.

    votes ``(B, N, T)``: each patch's cosine <e_i, t> with every caption, of the unmasked images;
    masked_sums ``(B, M, D)``: the summed unit patch embeddings of each masked image; text ``(T, D)``
    unit caption embeddings; masks ``(B, M, N)``; ``units`` the logits per cosine (logit_scale / N);
    captions ``(B, M)`` one caption per mask, or None for every caption. Phi is ``units * votes`` and
    the game ``units * <masked_sum, t>``.
    """
    phi = units * votes
    masked_values = units * (masked_sums @ text.T)
    return svo_shapley_loss(phi, masked_values, masks, captions)
