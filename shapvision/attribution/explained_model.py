"""The model an evaluation explains, seen through the one interface every method and metric uses.

Wraps a trained module (Classifier, Surrogate, SVOClassifier, or an Explainer's surrogate):
- ``logits(images)``: the full-image forward, differentiable (gradient methods run through it);
- ``masked_logits(images, keep)``: the forward with removed patches dropped (ViTs) or zeroed (ResNets);
- ``backbone`` (the :class:`MaskedBackbone`), ``family`` ("vit" | "resnet" | "other"), the patch grid.
Values are scored through ``link`` (:mod:`shapvision.shapley.links`): the game the explanations are
Shapley values of; softmax (probabilities) unless the checkpoint says otherwise (an explainer's own).
"""

from typing import Literal

import torch
import torch.nn as nn

from shapvision.models.timm_resnet import TimmResNetBackbone
from shapvision.models.timm_transformer import TimmTransformerBackbone
from shapvision.shapley.links import Link, get_link

Family = Literal["vit", "resnet", "other"]


class LogitsModule(nn.Module):
    """``images -> logits``: the plain nn.Module captum, pytorch-grad-cam and zennit take."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images)


class ExplainedModel:
    def __init__(self, module: nn.Module, name: str, link: str | Link = "softmax"):
        self.link = get_link(link)
        for attr in ("grid_size", "num_patches"):
            if not hasattr(module, attr):
                raise TypeError(
                    f"{name} ({type(module).__name__}) has no `{attr}`: not a patch-grid model"
                )
        self.module = module.eval()
        self.name = name
        self.network = LogitsModule(module)
        self.backbone = module.net.backbone
        self.grid_size = tuple(module.grid_size)
        self.num_patches = module.num_patches
        self.patch_size = self.backbone.patch_size
        self.family: Family = (
            "vit"
            if isinstance(self.backbone, TimmTransformerBackbone) and not self.backbone.is_eva
            else "resnet"
            if isinstance(self.backbone, TimmResNetBackbone)
            else "other"
        )

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images)

    def masked_logits(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.module(images, keep)

    def probabilities(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The game's value (the link of the logits) of ``target`` ``(B,)`` for every image."""
        return self.link(self.logits(images)).gather(1, target.view(-1, 1)).squeeze(1)

    def masked_probabilities(
        self, images: torch.Tensor, keep: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        return self.link(self.masked_logits(images, keep)).gather(1, target.view(-1, 1)).squeeze(1)
