"""What a checkpoint is: the module kind, the options that decide what it means (a resume or a
``--ckpt_path`` under other values is refused) and how its images were prepared (``shapvision
explain`` reads it)."""

import json

# The options that decide what a checkpoint means: resuming under other values is refused.
IDENTITY_OPTIONS = (
    "backbone",
    "backbone_kwargs",
    "num_classes",
    "img_size",
    "objective",
    "link",
    "drop_cls_token",
    "keep_cls",
    "head_blocks",
    "head_hidden_dim",
    "clip_model",
    "vision_depth",
    "text_depth",
)


def checkpoint_kind(cls: type) -> str:
    """The kind a checkpoint of module class ``cls`` records (``shapvision_module``): its class name,
    which :data:`shapvision.modules.checkpoints.MODULES` maps back to the class."""
    return cls.__name__


def shapvision_identity(module, datamodule) -> dict:
    """Module class, data class and the identity options of a module, as comparable strings."""
    identity = {
        "module": checkpoint_kind(type(module)),
        "data": None if datamodule is None else type(datamodule).__name__,
    }
    for option in IDENTITY_OPTIONS:
        if option in module.hparams:
            identity[option] = json.dumps(module.hparams[option], default=str, sort_keys=True)
    return identity


def data_description(datamodule) -> dict:
    """What an image needs to become this model's input, and what its outputs are called: the
    preprocessing and the class names (``shapvision explain`` reads them from the checkpoint)."""
    if datamodule is None:
        return {}
    description = {}
    preprocessing = getattr(datamodule, "preprocessing", None)
    recipe = preprocessing() if callable(preprocessing) else None
    if recipe is not None:
        description["preprocessing"] = recipe.as_dict()
    try:
        description["class_names"] = list(datamodule.class_names)
    except (AttributeError, NotImplementedError):
        pass  # image-text data: no classes
    return description


class TaggedCheckpointMixin:
    """Records the module's class name (a later stage refuses the wrong kind) and its identity (a
    resume under another model, data or objective is refused) in its checkpoints."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["shapvision_module"] = checkpoint_kind(type(self))
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        checkpoint["shapvision_identity"] = shapvision_identity(self, datamodule)
        data = data_description(datamodule)
        if data:
            checkpoint["shapvision_data"] = data
