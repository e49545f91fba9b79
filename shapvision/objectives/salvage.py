"""The Salvage objective (Naouar et al. 2025): a "Shapley distribution" fitted with Jensen-Shannon loss.

The explainer outputs two logit-scale values per patch and class, phi+ (patch present) and phi-
(patch absent). For a coalition S, ``u(S) = softmax(sum_{i in S} phi+_i + sum_{i not in S} phi-_i)``
should match the surrogate's distribution v(S); the loss is JS(u(S) || v(S)) over sampled masks.
Attributions are ``phi+ - phi-`` (the logit change from including a patch).
"""

import torch


def salvage_distribution(
    phi_plus: torch.Tensor, phi_minus: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """u(S) ``(B, M, K)`` for phi+ / phi- ``(B, N, K)`` and masks ``(B, M, N)``."""
    z = masks.to(phi_plus.dtype)
    logits = z @ phi_plus + (1 - z) @ phi_minus
    return torch.softmax(logits, dim=-1)


def jensen_shannon(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """JS divergence over the last dim, in nats, per row; 0 iff p == q, at most log 2."""
    m = 0.5 * (p + q)
    kl_pm = (p * ((p + eps).log() - (m + eps).log())).sum(-1)
    kl_qm = (q * ((q + eps).log() - (m + eps).log())).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def salvage_loss(
    phi_plus: torch.Tensor, phi_minus: torch.Tensor, masks: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Mean JS(u(S) || v(S)) over images and masks; values ``(B, M, K)`` are probabilities."""
    return jensen_shannon(salvage_distribution(phi_plus, phi_minus, masks), values).mean()
