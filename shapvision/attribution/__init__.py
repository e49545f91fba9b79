"""Every explanation method behind one interface: ``method.explain(images, target, index)``."""

from shapvision.attribution.base import (
    Attribution,
    AttributionMethod,
    UnsupportedBackbone,
    patch_to_pixels,
    pixels_to_patches,
)
from shapvision.attribution.explained_model import ExplainedModel
from shapvision.attribution.learned import ExplainerValues, SVOValues
from shapvision.attribution.registry import METHODS, create_method

__all__ = [
    "METHODS",
    "Attribution",
    "AttributionMethod",
    "ExplainedModel",
    "ExplainerValues",
    "SVOValues",
    "UnsupportedBackbone",
    "create_method",
    "patch_to_pixels",
    "pixels_to_patches",
]
