"""Backbones by name, as in timm: one call builds any supported family with the masked-forward interface.

The family comes from timm's model registry (the module that defines the model), not the name's prefix:
- timm's ``vision_transformer``, ``deit`` and ``eva`` models (ViT, DeiT, Eva / EVA02) ->
  :class:`TimmTransformerBackbone`
- timm's ``resnet`` models (ResNet, ResNeXt, wide / SE / ECA ResNets) -> :class:`TimmResNetBackbone`
  (stage 4 at stride 1)
Any other timm model (RegNet, ConvNeXt, Swin, ...) is refused with the families that are supported.
- ``open_clip:<name>`` (e.g. ``open_clip:EVA02-B-16``, ``open_clip:ViT-B-16``) -> the vision tower of an
  open_clip model: its timm trunk for EVA02, open_clip's own transformer for ViT-B-16.

The suite's own open_clip configs (``shapvision/models/clip_configs``, e.g. the tiny
``shapvision-digits-clip`` of the embedded image-text demo) are registered with open_clip on import,
so ``open_clip.get_tokenizer`` and ``create_model`` know them by name.
"""

from pathlib import Path

import open_clip
import timm
import timm.models
import torch.nn as nn

from shapvision.errors import ConfigurationError
from shapvision.models.masked_backbone import MaskedBackbone
from shapvision.models.open_clip_vit import OpenCLIPViTBackbone
from shapvision.models.timm_resnet import TimmResNetBackbone
from shapvision.models.timm_transformer import TimmTransformerBackbone
from shapvision.models.weights import create_timm_model, resolve_weights_file

OPEN_CLIP_PREFIX = "open_clip:"
CLIP_CONFIGS = Path(__file__).parent / "clip_configs"
if not {path.stem for path in CLIP_CONFIGS.glob("*.json")} <= set(open_clip.list_models()):
    open_clip.add_model_config(CLIP_CONFIGS)


def create_open_clip_model(
    name: str,
    pretrained: bool | str | None = False,
    img_size: int | None = None,
    vision_depth: int | None = None,
    text_depth: int | None = None,
) -> nn.Module:
    """An open_clip CLIP model from a local weights file (or random init); text tower included.

    ``img_size`` also resizes a timm trunk (EVA02), whose position embeddings open_clip's
    ``force_image_size`` leaves at 224; ``vision_depth`` keeps the first blocks of the vision tower
    only, ``text_depth`` those of the text tower (reduced models for tests and smoke runs).
    """
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {name!r}; known: {', '.join(open_clip.list_models()[:12])}, ..."
        )
    weights = resolve_weights_file(pretrained)
    kwargs = {} if img_size is None else {"force_image_size": img_size}
    model = open_clip.create_model(name, pretrained=weights, **kwargs)
    trunk = getattr(model.visual, "trunk", None)
    if trunk is not None and img_size is not None and hasattr(trunk, "set_input_size"):
        trunk.set_input_size(img_size=(img_size, img_size))
    if vision_depth is not None:
        blocks = trunk.blocks if trunk is not None else model.visual.transformer.resblocks
        if not 1 <= vision_depth <= len(blocks):
            raise ValueError(
                f"vision_depth must be in 1..{len(blocks)} for {name}, got {vision_depth}"
            )
        del blocks[vision_depth:]
    if text_depth is not None:
        text = getattr(model, "text", model)
        blocks = text.transformer.resblocks
        if not 1 <= text_depth <= len(blocks):
            raise ValueError(f"text_depth must be in 1..{len(blocks)} for {name}, got {text_depth}")
        del blocks[text_depth:]
    return model


def open_clip_vision_backbone(
    visual: nn.Module, masking: str = "drop", drop_prefix_tokens: bool = False
) -> MaskedBackbone:
    """The masked backbone over an open_clip vision tower (timm trunk or open_clip transformer)."""
    trunk = getattr(visual, "trunk", None)
    if trunk is not None:
        return TimmTransformerBackbone(
            trunk, masking=masking, drop_prefix_tokens=drop_prefix_tokens
        )
    return OpenCLIPViTBackbone(visual, masking=masking, drop_prefix_tokens=drop_prefix_tokens)


TRANSFORMER_MODULES = ("vision_transformer", "deit", "eva")
RESNET_MODULES = ("resnet",)


def timm_family(name: str) -> str:
    """``transformer`` or ``resnet``: the masked forward that fits timm's model ``name``."""
    if not timm.is_model(name):
        raise ConfigurationError(
            f"backbone {name!r} is not a timm model name (see timm.list_models()), nor open_clip:<name>"
        )
    if timm.models.is_model_in_modules(name, RESNET_MODULES):
        return "resnet"
    if timm.models.is_model_in_modules(name, TRANSFORMER_MODULES):
        return "transformer"
    module = timm.models.model_entrypoint(name).__module__
    raise ConfigurationError(
        f"backbone {name!r} is a {module} model, which has no masked forward here: use a timm "
        f"ViT / DeiT / Eva ({', '.join(TRANSFORMER_MODULES)}) or ResNet-family ({RESNET_MODULES[0]}) "
        "model, or open_clip:<name>"
    )


def create_backbone(
    name: str,
    pretrained: bool | str | None = False,
    img_size: int = 224,
    masking: str = "drop",
    drop_prefix_tokens: bool | None = False,
    **timm_kwargs,
) -> MaskedBackbone:
    """Build a masked backbone by name; ``pretrained`` is False or a local weights file (never a hub).

    ``drop_prefix_tokens`` (transformers only) removes the CLS / register tokens before the first block;
    ``None``: wherever the backbone has them (a ResNet has none).
    """
    family = "transformer" if name.startswith(OPEN_CLIP_PREFIX) else timm_family(name)
    if drop_prefix_tokens is None:
        drop_prefix_tokens = family == "transformer"
    if drop_prefix_tokens and family == "resnet":
        raise ValueError(
            f"drop_prefix_tokens applies to transformer backbones, not {name!r} (a ResNet has no CLS token)"
        )
    if name.startswith(OPEN_CLIP_PREFIX):
        clip = create_open_clip_model(name[len(OPEN_CLIP_PREFIX) :], pretrained, img_size)
        backbone = open_clip_vision_backbone(clip.visual, masking, drop_prefix_tokens)
        return check_patch_multiple(name, img_size, backbone)
    if family == "resnet":
        model = create_timm_model(name, pretrained, num_classes=0, **timm_kwargs)
        return TimmResNetBackbone(model, img_size=img_size)
    model = create_timm_model(name, pretrained, num_classes=0, img_size=img_size, **timm_kwargs)
    backbone = TimmTransformerBackbone(
        model, masking=masking, drop_prefix_tokens=drop_prefix_tokens
    )
    return check_patch_multiple(name, img_size, backbone)


def check_patch_multiple(name: str, img_size: int, backbone: MaskedBackbone) -> MaskedBackbone:
    """A ViT cuts an image into whole patches and silently drops the remainder; refuse that instead."""
    patch = backbone.patch_size
    if img_size % patch:
        below, above = img_size // patch * patch, (img_size // patch + 1) * patch
        raise ConfigurationError(
            f"img_size {img_size} is not a multiple of the patch size {patch} of {name}: the last "
            f"{img_size % patch} pixels of every row and column would be cut off. Use "
            f"{below or above} or {above} (data.init_args.img_size, linked into the model)"
        )
    return backbone
