"""The SimSHAP objective: squared error to the unbiased Sim-Semivalue target, no normalization.

The target is computed from the same Shapley-kernel masks and surrogate values a FastSHAP step
would use, so the two objectives cost the same per step; its expectation is the exact Shapley value,
so regressing on it converges to Shapley values without an efficiency constraint.
"""

import torch

from shapvision.objectives.explainer_objective import ActivatedObjective
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


class SimSHAP(ActivatedObjective):
    """Regression on the Sim-Semivalue target from the same Shapley-kernel masks; no normalization."""

    name = "simshap"

    def attributions(self, raw, v_full, v_empty):
        return self.activated(raw)

    def loss(self, raw, masks, values, v_full, v_empty):
        return simshap_loss(self.attributions(raw, v_full, v_empty), masks, values, v_full, v_empty)
