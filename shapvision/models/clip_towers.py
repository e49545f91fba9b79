"""An open_clip CLIP model as the suite uses it: a masked vision backbone, patch embeddings in the
joint space, the text encoder and the contrastive temperature.

Two vision towers are supported, the ones :func:`open_clip_vision_backbone` masks:
- a timm trunk with ``pool='token'`` and no open_clip projection (``EVA02-B-16``): the trunk's head,
  ``Linear(768, 512)`` with bias, maps a token after the final norm into the joint space;
- open_clip's own ``VisionTransformer`` (``ViT-B-16``, the tiny ``shapvision-digits-clip``): the
  ``proj`` matrix maps a token after ``ln_post``.
The same map gives the CLS embedding (the plain CLIP image embedding, equal to ``encode_image``) and
every patch's embedding (SVO-CLIP's votes).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from shapvision.models.factory import create_open_clip_model, open_clip_vision_backbone
from shapvision.models.patch_features import PatchFeatures

MAX_LOGIT_SCALE = math.log(100)


def joint_space_projection(visual: nn.Module):
    """The map from a vision token (after the final norm) to the joint embedding space."""
    trunk = getattr(visual, "trunk", None)
    if trunk is not None:
        if len(visual.head) or not isinstance(trunk.head, nn.Linear):
            raise ValueError(
                "timm vision towers are supported with timm_proj null (the trunk's head is the projection), "
                "as in EVA02-B-16"
            )
        return trunk.head
    if getattr(visual, "proj", None) is None:
        raise ValueError("this open_clip vision tower has no projection into the joint space")
    return lambda tokens: tokens @ visual.proj


class CLIPTowers(nn.Module):
    """``encode_text`` (unit norm), ``vision_features`` (masked), ``patch_embeddings`` / ``cls_embedding``."""

    def __init__(
        self,
        name: str,
        pretrained: bool | str = False,
        img_size: int | None = None,
        vision_depth: int | None = None,
        text_depth: int | None = None,
        masking: str = "drop",
    ):
        super().__init__()
        self.clip = create_open_clip_model(name, pretrained, img_size, vision_depth, text_depth)
        self.masking = masking
        self.backbone = open_clip_vision_backbone(self.clip.visual, masking=masking)
        self.project = joint_space_projection(self.clip.visual)
        self.context_length = self.clip.context_length

    def drop_prefix_tokens(self) -> None:
        """Run the vision tower on patch tokens only (SVO: "remove masked patches along with [cls]"),
        in every forward from now on; the CLS embedding is then gone. The weights are unchanged."""
        self.backbone = open_clip_vision_backbone(
            self.clip.visual, masking=self.masking, drop_prefix_tokens=True
        )

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    def clamp_logit_scale(self) -> None:
        """open_clip's trainer: logit_scale in [0, ln 100] after every optimizer step."""
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``(T, context)`` -> unit text embeddings ``(T, D)``."""
        return F.normalize(self.clip.encode_text(tokens), dim=-1)

    def vision_features(
        self, images: torch.Tensor, keep: torch.Tensor | None = None
    ) -> PatchFeatures:
        return self.backbone.forward_patches(images, keep)

    def patch_embeddings(self, features: PatchFeatures) -> torch.Tensor:
        """Unit patch embeddings ``(B, N, D)`` in the joint space; zero at removed patches.

        Normalised in float32: a removed patch's token is zero, and F.normalize's eps (1e-12)
        underflows to 0 in float16, so under fp16 autocast 0 / 0 would put NaN there."""
        embedded = F.normalize(self.project(features.tokens).float(), dim=-1)
        return embedded * features.keep.unsqueeze(2).to(embedded.dtype)

    def cls_embedding(self, features: PatchFeatures) -> torch.Tensor:
        """The unit CLS embedding ``(B, D)``: CLIP's image embedding (of the masked image under a mask)."""
        if features.pooled is None:
            raise ValueError(
                "this vision tower runs without its CLS token (drop_prefix_tokens): it has no CLS embedding"
            )
        return F.normalize(self.project(features.pooled), dim=-1)
