"""timm ResNets as patch-grid backbones, with stage 4 at stride 1 and no dilation (SVO-ResNet).

A ResNet has no tokens to drop: the masked branch zeroes the pixels of removed patches (0 is the
dataset mean after normalisation), runs the full CNN and reads the feature map at the kept cells.
With stage 4's first block at stride 1 the output stride is 16, so a 224 image gives a 14 x 14 grid
that matches a ViT-B/16's patches cell for cell.
"""

import torch.nn as nn

from shapvision.models.masked_backbone import MaskedBackbone, pixel_mask
from shapvision.models.patch_features import PatchFeatures

OUTPUT_STRIDE = 16


def set_last_stage_stride_one(model: nn.Module) -> None:
    """Stride 2 -> 1 in ``layer4[0]`` (its strided conv and its downsample path); dilation stays 1."""
    first = model.layer4[0]
    strided = [
        m for m in first.modules() if isinstance(m, (nn.Conv2d, nn.AvgPool2d)) and _stride(m) == 2
    ]
    if not strided:
        raise ValueError(
            "layer4[0] of this ResNet has no stride-2 layer to change; is it already output stride 16?"
        )
    for module in strided:
        if isinstance(module, nn.AvgPool2d):
            module.kernel_size, module.stride = 1, 1
        else:
            module.stride = (1, 1)


def _stride(module) -> int:
    stride = module.stride
    return stride[0] if isinstance(stride, tuple) else stride


class TimmResNetBackbone(MaskedBackbone):
    """Masked forward over a timm ``ResNet`` whose last stage has been set to stride 1."""

    def __init__(self, model: nn.Module, img_size: int = 224):
        super().__init__()
        if not hasattr(model, "layer4"):
            raise TypeError(f"{type(model).__name__} is not a timm ResNet (no `layer4`)")
        if img_size % OUTPUT_STRIDE:
            raise ValueError(
                f"img_size must be a multiple of {OUTPUT_STRIDE} for a ResNet grid, got {img_size}"
            )
        set_last_stage_stride_one(model)
        self.model = model
        self.grid_size = (img_size // OUTPUT_STRIDE, img_size // OUTPUT_STRIDE)
        self.patch_size = OUTPUT_STRIDE
        self.embed_dim = model.num_features

    def forward_patches(self, images, keep=None) -> PatchFeatures:
        explicit_keep = keep is not None
        keep = self.validate_inputs(images, keep)
        if explicit_keep:
            images = images * pixel_mask(keep, self.grid_size, self.patch_size).to(images.dtype)
        feature_map = self.model.forward_features(images)
        tokens = feature_map.flatten(2).transpose(1, 2)
        tokens = tokens * keep.unsqueeze(2).to(tokens.dtype)
        pooled = tokens.sum(1) / keep.sum(1, keepdim=True).clamp_min(1).to(tokens.dtype)
        return PatchFeatures(tokens=tokens, keep=keep, pooled=pooled)
