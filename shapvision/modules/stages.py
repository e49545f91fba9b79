"""A module built from a previous stage's checkpoint (the surrogate from its classifier, the explainer
from its surrogate), and modules built inside another module's constructor."""

from shapvision.local_files import read_checkpoint
from shapvision.modules.identity import checkpoint_kind


def construct_nested(build, *args, **kwargs):
    """``build(*args, **kwargs)`` (a module class or a loader) from inside another module's ``__init__``,
    with the built module's own hyperparameters.

    Lightning's ``save_hyperparameters`` walks up the chain of ``__init__`` frames and merges the init
    arguments of every enclosing LightningModule into the inner one's; a plain function's frame ends
    that chain.
    """
    return build(*args, **kwargs)


def constructor_arguments(checkpoint: dict) -> dict:
    """A checkpoint's hyperparameters as constructor arguments: without the private keys (``_class_path``,
    ``_instantiator``) that LightningCLI's own instantiator added to checkpoints before shapvision 0.5."""
    return {
        k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")
    }


def load_stage(cls, path: str | None, option: str):
    """Load a previous stage's checkpoint with a clear error when it is missing or of the wrong kind."""
    if not path:
        raise ValueError(
            f"{option} is required: the path of a {cls.__name__} checkpoint (.ckpt) from the previous stage"
        )
    checkpoint = read_checkpoint(path, option)
    kind = checkpoint.get("shapvision_module")
    if kind is not None and kind != checkpoint_kind(cls):
        raise ValueError(
            f"{option} {path} is a {kind} checkpoint, but a {cls.__name__} checkpoint is needed"
        )
    return constructor_arguments(checkpoint), checkpoint["state_dict"]


def check_compatible(option: str, source: dict, num_classes: int, img_size: int) -> None:
    """The data's class count and image size must match the stage the module is built from."""
    if source.get("num_classes") != num_classes:
        raise ValueError(
            f"{option} was trained with num_classes={source.get('num_classes')}, but the data has {num_classes} classes; "
            "use the same dataset for every stage"
        )
    if source.get("img_size") != img_size:
        raise ValueError(
            f"{option} was trained at img_size={source.get('img_size')} (its patch grid), but the data gives {img_size}; "
            "set data.img_size to match"
        )
