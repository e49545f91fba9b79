"""The SVO network (Fan et al. 2026): a masked backbone whose patch tokens each vote per-class values.

Phi = PatchVotingHead(patch tokens) ``(B, N, K)``; logits = Phi.sum(1) (Eq. 7). The backbone's prefix
tokens (CLS, registers) are removed before the first block by default (``drop_cls_token``, the
paper's design); kept, they take part in attention but cast no vote. Either way every unit of the
logit is owned by a patch. Under a mask the
removed patches cast no vote, so the model's own value function is v(S) = forward(x, S).sum(1).
"""

import torch
import torch.nn as nn

from shapvision.models.factory import create_backbone
from shapvision.models.masked_backbone import repeat_per_mask
from shapvision.models.patch_voting_head import PatchVotingHead


class SVONet(nn.Module):
    def __init__(
        self,
        backbone: str,
        num_classes: int,
        img_size: int,
        pretrained: bool | str = False,
        backbone_kwargs: dict | None = None,
        drop_cls_token: bool | None = None,
    ):
        super().__init__()
        self.backbone = create_backbone(
            backbone,
            pretrained=pretrained,
            img_size=img_size,
            drop_prefix_tokens=drop_cls_token,
            **(backbone_kwargs or {}),
        )
        self.head = PatchVotingHead(self.backbone.embed_dim, num_classes)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Votes Phi ``(B, N, K)`` of the (masked) images; zero at removed patches."""
        features = self.backbone.forward_patches(images, keep)
        return self.head(features.tokens, features.keep)

    def logits(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(images, keep).sum(1)`` ``(B, K)``, without computing every vote."""
        features = self.backbone.forward_patches(images, keep)
        return self.head.summed_votes(features.tokens, features.keep)

    def masked_logits(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """v(S) ``(B, M, K)`` for images ``(B, C, H, W)`` and masks ``(B, M, N)``: one batched masked forward."""
        batch, num_masks, num_patches = masks.shape
        values = self.logits(repeat_per_mask(images, num_masks), masks.reshape(-1, num_patches))
        return values.view(batch, num_masks, -1)
