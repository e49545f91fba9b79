"""Training objectives as plain functions of tensors."""

from shapvision.objectives.fastshap import fastshap_loss
from shapvision.objectives.salvage import jensen_shannon, salvage_distribution, salvage_loss
from shapvision.objectives.simshap import simshap_loss
from shapvision.objectives.surrogate_kl import per_sample_kl, surrogate_kl_loss
from shapvision.objectives.svo import svo_shapley_loss

__all__ = [
    "fastshap_loss",
    "jensen_shannon",
    "per_sample_kl",
    "salvage_distribution",
    "salvage_loss",
    "simshap_loss",
    "surrogate_kl_loss",
    "svo_shapley_loss",
]
