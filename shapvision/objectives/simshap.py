"""The SimSHAP objective: squared error to the unbiased Sim-Semivalue target, no normalization.

The target is computed from the same Shapley-kernel masks and surrogate values a FastSHAP step
would use, so the two objectives cost the same per step; its expectation is the exact Shapley value,
so regressing on it converges to Shapley values without an efficiency constraint.
"""

import torch

from shapvision.shapley.sim_semivalue import sim_semivalue_target


def simshap_loss(
    phi: torch.Tensor,
    masks: torch.Tensor,
    values: torch.Tensor,
    v_full: torch.Tensor,
    v_empty: torch.Tensor,
) -> torch.Tensor:
    """Mean over (B, N, K) of ``(phi - target)^2`` with the target detached from the graph."""
    target = sim_semivalue_target(masks, values, v_full, v_empty).detach()
    return (phi - target).pow(2).mean()
