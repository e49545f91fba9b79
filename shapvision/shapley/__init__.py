"""Pure-torch Shapley value machinery: mask samplers, estimators and normalization (no Lightning, no I/O)."""

from shapvision.shapley.estimate import ShapleyEstimate
from shapvision.shapley.exact import MAX_EXACT_PLAYERS, exact_shapley, shapley_coalition_weights
from shapvision.shapley.game import GameEvaluator, ValueFunction
from shapvision.shapley.games import MLPGame, PairwiseInteractionGame
from shapvision.shapley.kernel_shap import border_sizes, kernel_shap, shapley_kernel_gram
from shapvision.shapley.links import LINKS, Link, get_link
from shapvision.shapley.masks import check_masks, enumerate_coalitions, full_and_empty
from shapvision.shapley.normalization import additive_efficient_normalization
from shapvision.shapley.permutation import permutation_shapley
from shapvision.shapley.samplers import (
    AttributionGuidedSampler,
    ShapleyKernelSampler,
    UniformSizeSampler,
    shapley_kernel_size_probabilities,
)
from shapvision.shapley.sim_semivalue import (
    shapley_kernel_normalizer,
    sim_semivalue,
    sim_semivalue_samples,
    sim_semivalue_target,
)

__all__ = [
    "LINKS",
    "MAX_EXACT_PLAYERS",
    "Link",
    "AttributionGuidedSampler",
    "GameEvaluator",
    "MLPGame",
    "PairwiseInteractionGame",
    "ShapleyEstimate",
    "ShapleyKernelSampler",
    "UniformSizeSampler",
    "ValueFunction",
    "additive_efficient_normalization",
    "check_masks",
    "enumerate_coalitions",
    "exact_shapley",
    "full_and_empty",
    "get_link",
    "border_sizes",
    "kernel_shap",
    "permutation_shapley",
    "shapley_coalition_weights",
    "shapley_kernel_gram",
    "shapley_kernel_normalizer",
    "shapley_kernel_size_probabilities",
    "sim_semivalue",
    "sim_semivalue_samples",
    "sim_semivalue_target",
]
