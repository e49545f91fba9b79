"""Backbones by name, as in timm: one call builds any supported family with the masked-forward interface.

- ``vit_*``, ``deit*``, ``eva*`` and any other timm ViT / Eva name -> :class:`TimmTransformerBackbone`
- ``resnet*`` (timm ResNet family) -> :class:`TimmResNetBackbone` (stage 4 at stride 1)
- ``open_clip:<name>`` (e.g. ``open_clip:EVA02-B-16``, ``open_clip:ViT-B-16``) -> the vision tower of an
  open_clip model: its timm trunk for EVA02, open_clip's own transformer for ViT-B-16.
"""

import open_clip
import torch.nn as nn

from shapvision.models.masked_backbone import MaskedBackbone
from shapvision.models.open_clip_vit import OpenCLIPViTBackbone
from shapvision.models.timm_resnet import TimmResNetBackbone
from shapvision.models.timm_transformer import TimmTransformerBackbone
from shapvision.models.weights import create_timm_model, resolve_weights_file

OPEN_CLIP_PREFIX = "open_clip:"


def create_open_clip_model(
    name: str, pretrained: bool | str | None = False, img_size: int | None = None
) -> nn.Module:
    """An open_clip CLIP model from a local weights file (or random init); text tower included."""
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {name!r}; known: {', '.join(open_clip.list_models()[:12])}, ..."
        )
    weights = resolve_weights_file(pretrained)
    kwargs = {} if img_size is None else {"force_image_size": img_size}
    return open_clip.create_model(name, pretrained=weights, **kwargs)


def open_clip_vision_backbone(visual: nn.Module, masking: str = "drop") -> MaskedBackbone:
    """The masked backbone over an open_clip vision tower (timm trunk or open_clip transformer)."""
    trunk = getattr(visual, "trunk", None)
    if trunk is not None:
        return TimmTransformerBackbone(trunk, masking=masking)
    return OpenCLIPViTBackbone(visual, masking=masking)


def create_backbone(
    name: str,
    pretrained: bool | str | None = False,
    img_size: int = 224,
    masking: str = "drop",
    drop_prefix_tokens: bool = False,
    **timm_kwargs,
) -> MaskedBackbone:
    """Build a masked backbone by name; ``pretrained`` is False or a local weights file (never a hub).

    ``drop_prefix_tokens`` (timm ViTs only) removes the CLS / register tokens before the first block.
    """
    if drop_prefix_tokens and (name.startswith(OPEN_CLIP_PREFIX) or name.startswith("resnet")):
        raise ValueError(f"drop_prefix_tokens applies to timm ViT backbones, not {name!r}")
    if name.startswith(OPEN_CLIP_PREFIX):
        clip = create_open_clip_model(name[len(OPEN_CLIP_PREFIX) :], pretrained, img_size)
        return open_clip_vision_backbone(clip.visual, masking=masking)
    if name.startswith("resnet"):
        model = create_timm_model(name, pretrained, num_classes=0, **timm_kwargs)
        return TimmResNetBackbone(model, img_size=img_size)
    model = create_timm_model(name, pretrained, num_classes=0, img_size=img_size, **timm_kwargs)
    return TimmTransformerBackbone(model, masking=masking, drop_prefix_tokens=drop_prefix_tokens)
