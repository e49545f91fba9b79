"""The files a user names: every path option expands ``~`` and ``${VAR}`` the same way, and every
checkpoint is read by one function, with one error for a missing or unreadable file.

At the bottom of the package (no import from it), so data/, models/, modules/ and the CLIs share it.
"""

import os
from pathlib import Path

import torch

from shapvision.errors import ConfigurationError


def local_path(value: str | os.PathLike) -> Path:
    """A path option as the user meant it: ``${VAR}`` / ``$VAR`` and ``~`` expanded."""
    return Path(os.path.expandvars(str(value))).expanduser()


def read_checkpoint(path: str | os.PathLike, option: str, mmap: bool = True) -> dict:
    """The checkpoint at ``path`` (the option that named it goes in the errors).

    Memory-mapped by default: inspecting a checkpoint (its kind, identity, hyperparameters) reads
    none of its tensors, and loading a state dict copies them once.
    """
    file = local_path(path)
    if not file.is_file():
        raise ConfigurationError(
            f"{option}: checkpoint not found: {file}; train that run first or fix the path"
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as error:
        raise ConfigurationError(
            f"{option}: {file} is not a readable PyTorch checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); point it at a .ckpt written by shapvision"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ConfigurationError(
            f"{option}: {file} holds a {type(checkpoint).__name__}, not a Lightning checkpoint"
        )
    return checkpoint
