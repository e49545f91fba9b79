"""Training objectives: losses as plain functions of tensors, and the explainer objectives as objects."""

from shapvision.objectives.explainer_objective import ExplainerObjective
from shapvision.objectives.fastshap import FastSHAP, fastshap_loss
from shapvision.objectives.salvage import (
    Salvage,
    jensen_shannon,
    salvage_distribution,
    salvage_loss,
)
from shapvision.objectives.simshap import SimSHAP, simshap_loss
from shapvision.objectives.surrogate_kl import per_sample_kl, surrogate_kl_loss
from shapvision.objectives.svo import SVOObjective, svo_shapley_loss

__all__ = [
    "ExplainerObjective",
    "FastSHAP",
    "Salvage",
    "SimSHAP",
    "fastshap_loss",
    "jensen_shannon",
    "per_sample_kl",
    "salvage_distribution",
    "salvage_loss",
    "simshap_loss",
    "surrogate_kl_loss",
    "SVOObjective",
    "svo_shapley_loss",
]
