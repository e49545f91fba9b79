"""The FastSHAP / ViT-Shapley objective: weighted least squares with Shapley-kernel masks.

With masks drawn from the Shapley kernel, the KernelSHAP regression loss is an expectation, so the
explainer minimises ``E_S[(v(empty) + 1_S^T phi - v(S))^2]``. Covert et al. scale the mean by N
(so that loss magnitudes compare across grid sizes); the minimiser under the efficiency constraint,
enforced by additive efficient normalization beforehand, is the Shapley value.
"""

import torch

from shapvision.objectives.explainer_objective import ActivatedObjective
from shapvision.shapley.normalization import additive_efficient_normalization


def fastshap_loss(
    phi: torch.Tensor, masks: torch.Tensor, values: torch.Tensor, v_empty: torch.Tensor
) -> torch.Tensor:
    """N * mean over (B, M, K) of ``(v_empty + masks @ phi - values)^2``.

    phi ``(B, N, K)`` (already normalized), masks ``(B, M, N)`` bool, values ``(B, M, K)`` = v(S),
    v_empty ``(K,)`` or ``(B, K)``.
    """
    num_players = phi.shape[1]
    predicted = v_empty.unsqueeze(-2) + masks.to(phi.dtype) @ phi
    return num_players * (predicted - values).pow(2).mean()


class FastSHAP(ActivatedObjective):
    """ViT-Shapley's objective: tanh outputs, additive efficient normalization, Shapley-kernel masks."""

    name = "fastshap"

    def attributions(self, raw, v_full, v_empty):
        return additive_efficient_normalization(self.activated(raw), v_full, v_empty)

    def loss(self, raw, masks, values, v_full, v_empty):
        return fastshap_loss(self.attributions(raw, v_full, v_empty), masks, values, v_empty)
