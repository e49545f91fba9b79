"""Plain CLIP fine-tuning: the baseline for SVO-CLIP, with the same data, schedule and loss but the CLS
embedding as the image embedding and no Shapley loss."""

import torch

from shapvision.modules.image_text import ImageTextModule


class CLIPFineTune(ImageTextModule):
    """Image features = the unit CLS embedding in the joint space (open_clip's ``encode_image``)."""

    def image_features(
        self, images: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.towers.cls_embedding(self.towers.vision_features(images, keep))
