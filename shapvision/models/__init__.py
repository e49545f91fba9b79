"""Backbones with one masked-forward interface, heads, and offline weight loading."""

from shapvision.models.explainer_head import ExplainerHead
from shapvision.models.factory import (
    create_backbone,
    create_open_clip_model,
    open_clip_vision_backbone,
)
from shapvision.models.masked_backbone import MaskedBackbone, pixel_mask
from shapvision.models.masked_classifier import MaskedClassifier
from shapvision.models.open_clip_vit import OpenCLIPViTBackbone
from shapvision.models.patch_features import PatchFeatures
from shapvision.models.patch_voting_head import PatchVotingHead
from shapvision.models.timm_resnet import TimmResNetBackbone
from shapvision.models.timm_transformer import TimmTransformerBackbone
from shapvision.models.weights import create_timm_model, resolve_weights_file

__all__ = [
    "ExplainerHead",
    "MaskedBackbone",
    "MaskedClassifier",
    "OpenCLIPViTBackbone",
    "PatchFeatures",
    "PatchVotingHead",
    "TimmResNetBackbone",
    "TimmTransformerBackbone",
    "create_backbone",
    "create_open_clip_model",
    "create_timm_model",
    "open_clip_vision_backbone",
    "pixel_mask",
    "resolve_weights_file",
]
