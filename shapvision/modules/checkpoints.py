"""Load any trained module of the suite from its checkpoint alone, by the kind recorded in it (the
previous stages' files it was initialised from are not needed)."""

import torch

from shapvision.data.base import local_path
from shapvision.modules.base import construct_nested
from shapvision.modules.classifier import Classifier
from shapvision.modules.clip_finetune import CLIPFineTune
from shapvision.modules.explainer import Explainer
from shapvision.modules.surrogate import Surrogate
from shapvision.modules.svo_classifier import SVOClassifier
from shapvision.modules.svo_clip import SVOCLIP

MODULES = {
    cls.__name__: cls
    for cls in (Classifier, Surrogate, Explainer, SVOClassifier, SVOCLIP, CLIPFineTune)
}


PREVIOUS_STAGE_OPTIONS = ("classifier_checkpoint", "init_from")


def read_checkpoint(path: str, option: str) -> dict:
    """The checkpoint at ``path`` for inspection: memory-mapped, so its tensors are not read."""
    file = local_path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{option}: checkpoint not found: {file}; train that run first or fix the path"
        )
    return torch.load(file, map_location="cpu", weights_only=False, mmap=True)


def module_kind(checkpoint: dict, path: str, option: str) -> str:
    kind = checkpoint.get("shapvision_module")
    if kind not in MODULES:
        raise ValueError(
            f"{option}: {local_path(path)} is not a shapvision checkpoint (module kind {kind!r}); "
            f"expected one of {', '.join(MODULES)}"
        )
    return kind


def checkpoint_kind(path: str, option: str) -> str:
    return module_kind(read_checkpoint(path, option), path, option)


def load_module(path: str, option: str, kinds: tuple[str, ...] = tuple(MODULES)):
    """The module saved at ``path`` (eval mode, on the CPU); ``kinds`` limits what is accepted."""
    checkpoint = read_checkpoint(path, option)
    kind = module_kind(checkpoint, path, option)
    if kind not in kinds:
        raise ValueError(
            f"{option}: {path} is a {kind} checkpoint, but one of {', '.join(kinds)} is needed"
        )
    # The previous stage's file is only where the weights started; they are in this checkpoint.
    hparams = checkpoint["hyper_parameters"]
    previous = {k: None for k in PREVIOUS_STAGE_OPTIONS if hparams.get(k)}
    return construct_nested(
        MODULES[kind].load_from_checkpoint, local_path(path), map_location="cpu", **previous
    ).eval()
