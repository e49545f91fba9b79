"""A masked backbone with a linear head on its pooled feature: the classifier and the surrogate."""

import torch
import torch.nn as nn

from shapvision.models.factory import create_backbone


class MaskedClassifier(nn.Module):
    def __init__(
        self,
        backbone: str,
        num_classes: int,
        img_size: int,
        pretrained: bool | str = False,
        backbone_kwargs: dict | None = None,
    ):
        super().__init__()
        self.backbone = create_backbone(
            backbone, pretrained=pretrained, img_size=img_size, **(backbone_kwargs or {})
        )
        self.head = nn.Linear(self.backbone.embed_dim, num_classes)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone.forward_patches(images, keep).pooled)
