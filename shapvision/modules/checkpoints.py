"""Any trained module of the suite from its checkpoint alone: one table from the kind recorded in a
checkpoint to its class, and one loader (the previous stages' files it was initialised from are not
needed: their weights are in the checkpoint)."""

from pathlib import Path

import lightning as L

from shapvision.errors import ConfigurationError
from shapvision.local_files import local_path, read_checkpoint
from shapvision.modules.classifier import Classifier
from shapvision.modules.clip_finetune import CLIPFineTune
from shapvision.modules.explainer import Explainer
from shapvision.modules.identity import checkpoint_kind
from shapvision.modules.stages import construct_nested, constructor_arguments
from shapvision.modules.surrogate import Surrogate
from shapvision.modules.svo_classifier import SVOClassifier
from shapvision.modules.svo_clip import SVOCLIP

MODULES = {
    checkpoint_kind(cls): cls
    for cls in (Classifier, Surrogate, Explainer, SVOClassifier, SVOCLIP, CLIPFineTune)
}

PREVIOUS_STAGE_OPTIONS = ("classifier_checkpoint", "init_from")


def module_class(checkpoint: dict, path: str, option: str) -> type:
    kind = checkpoint.get("shapvision_module")
    if kind not in MODULES:
        raise ConfigurationError(
            f"{option}: {local_path(path)} is not a shapvision checkpoint (module kind {kind!r}); "
            f"expected one of {', '.join(MODULES)}"
        )
    return MODULES[kind]


def checkpoint_class(path: str, option: str) -> type:
    """The module class of the checkpoint at ``path``, read without its tensors."""
    return module_class(read_checkpoint(path, option), path, option)


def load_module(path: str, option: str, accepts=None, needed: str = ""):
    """The module saved at ``path`` (eval mode, on the CPU). ``accepts(cls)`` limits what is taken;
    ``needed`` says what is in the error (e.g. "an image-text checkpoint")."""
    checkpoint = read_checkpoint(path, option)
    cls = module_class(checkpoint, path, option)
    if accepts is not None and not accepts(cls):
        raise ConfigurationError(
            f"{option}: {local_path(path)} is a {cls.__name__} checkpoint, but {needed} is needed"
        )
    arguments = constructor_arguments(checkpoint)
    arguments.update({k: None for k in PREVIOUS_STAGE_OPTIONS if arguments.get(k)})
    module = construct_nested(cls, **arguments)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def save_untrained_checkpoint(module, path: str | Path) -> str:
    """``module`` as a checkpoint in Lightning's format, with no training (the weights it has): what
    the next stage's constructor or an evaluation reads. For tests, benchmarks and the cost model."""
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return str(path)
