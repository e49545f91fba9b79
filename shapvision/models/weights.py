"""Offline weight loading: random init or a local file; never a hub."""

import timm
import torch.nn as nn

from shapvision.local_files import local_path


def resolve_weights_file(pretrained: bool | str | None, option: str = "pretrained") -> str | None:
    """None for random init, or the path of an existing local weights file; a clear error otherwise."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        raise ValueError(
            f"{option}=true would download weights from a model hub, which shapvision never does; "
            f"set {option} to the path of a local weights file (.safetensors / .pth / .bin), or false for random init"
        )
    path = local_path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(
            f"{option} weights file not found: {path}. Download it on a machine with network access "
            f"and pass its local path (see data/README.md), or set {option}=false for random init"
        )
    return str(path)


def create_timm_model(name: str, pretrained: bool | str | None = False, **kwargs) -> nn.Module:
    """``timm.create_model`` with weights only from a local file (``pretrained_cfg_overlay=dict(file=...)``)."""
    weights = resolve_weights_file(pretrained)
    if weights is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    return timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay=dict(file=weights), **kwargs
    )
