"""What every LightningModule of the suite shares: the optimizer schedule, a NaN guard, stage loading."""

import json
import math
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from jsonargparse._common import class_instantiators
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from timm.optim import param_groups_weight_decay

RANK_SEED_STRIDE = 1_000_003


class ShapleyModule(L.LightningModule):
    """Base class for the CLI's subclass mode; subclasses set ``num_patches`` / ``grid_size``.

    AdamW with linear warmup then cosine decay to 0 over the run (ViT-Shapley's schedule); weight decay
    on weight matrices only, as timm's ``param_groups_weight_decay`` groups them (no decay on norms,
    biases, and the position / class embeddings each backbone lists in ``no_weight_decay()``).
    """

    def __init__(self, lr: float = 1e-4, weight_decay: float = 1e-5, warmup_steps: int = 0):
        super().__init__()
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps

    def no_weight_decay_names(self) -> set[str]:
        """Full parameter names that every submodule with a timm-style ``no_weight_decay()`` lists."""
        names = set()
        for prefix, module in self.named_modules():
            listed = getattr(module, "no_weight_decay", None)
            if module is not self and callable(listed):
                names |= {f"{prefix}.{name}" for name in listed()}
        return names

    def configure_optimizers(self):
        groups = param_groups_weight_decay(
            self, self.weight_decay, no_weight_decay_list=self.no_weight_decay_names()
        )
        optimizer = torch.optim.AdamW(groups, lr=self.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.warmup_steps, total - 1) if total > 1 else 0

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_fit_start(self) -> None:
        # seed_everything gives every DDP rank the same seed, so every rank would draw the same masks
        # (and SVO classes) for its local batch; an offset per rank makes the ranks' draws independent.
        # A resumed fit has each rank's saved stream back already (on_load_checkpoint).
        if self.trainer.world_size > 1 and not getattr(self, "_rng_restored", False):
            torch.manual_seed(torch.initial_seed() + RANK_SEED_STRIDE * self.global_rank)

    @contextmanager
    def fixed_random_stream(self, batch_idx: int, device: torch.device, seed: int = 0):
        """A seed fixed per validation batch and rank, so masks drawn inside are the same every epoch
        (a comparable val loss) while training's random stream is left where it was."""
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 10_007 * batch_idx + RANK_SEED_STRIDE * self.global_rank)
            yield

    def check_finite(self, loss: torch.Tensor, name: str = "train/loss") -> torch.Tensor:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{name} is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}); "
                "training stopped. Lower the learning rate, or use bf16/fp32 rather than fp16 precision"
            )
        return loss

    def run_dir(self) -> Path:
        """The run directory; a collective under DDP (``trainer.log_dir`` broadcasts), so call it on every rank."""
        return Path(self.trainer.log_dir or self.trainer.default_root_dir)

    def on_test_end(self) -> None:
        """Write the synced test metrics as ``test_metrics.json`` in the run directory (rank 0)."""
        run_dir = self.run_dir()
        if not self.trainer.is_global_zero:
            return
        metrics = {
            k: float(v)
            for k, v in self.trainer.callback_metrics.items()
            if k.startswith("test/") and v.numel() == 1
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Every rank's random state (Lightning saves none), so a resumed fit draws the same masks as
        # the uninterrupted run, from an end-of-epoch or a mid-epoch (preemption) checkpoint alike.
        # Called on every rank (the file is written by rank 0), so the gather is collective.
        states = {"torch": self._gather_state(torch.get_rng_state())}
        if self.device.type == "cuda":
            states["cuda"] = self._gather_state(torch.cuda.get_rng_state(self.device))
        checkpoint["shapvision_rng"] = states

    def _gather_state(self, state: torch.Tensor) -> torch.Tensor:
        """(world_size, state_size) uint8: row r is rank r's generator state."""
        if self._trainer is None or self.trainer.world_size == 1:
            return state.unsqueeze(0)
        return self.all_gather(state.to(self.device)).cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("shapvision_rng")
        resuming_fit = self._trainer is not None and self.trainer.state.fn == "fit"
        if states is None or not resuming_fit or len(states["torch"]) != self.trainer.world_size:
            return  # another world size: the ranks' streams cannot be matched, start them afresh
        rank = self.trainer.global_rank
        torch.set_rng_state(states["torch"][rank].clone())  # a row view is refused
        if "cuda" in states and self.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"][rank].clone(), self.device)
        self._rng_restored = True

    def on_train_epoch_start(self) -> None:
        # Streaming data (webdataset shards) reshuffles per epoch; its workers read the epoch when they start.
        set_epoch = getattr(getattr(self.trainer, "datamodule", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        skipped = getattr(datamodule, "num_skipped", None)
        if skipped is not None:
            self.log("data/skipped_images", float(skipped), rank_zero_only=True)
        truncated = getattr(datamodule, "num_truncated", None)
        if truncated is not None:
            self.log("data/truncated_captions", float(truncated), rank_zero_only=True)


def construct_nested(build, *args, **kwargs):
    """``build(*args, **kwargs)`` (a module class or a loader) from inside another module's ``__init__``,
    with the built module's own hyperparameters.

    ``save_hyperparameters`` would otherwise take another module's options: under LightningCLI, Lightning
    hands the CLI's model hyperparameters (a context variable) to every module constructed while the
    outer one is built; and without it, Lightning's frame walk merges the init arguments of every
    enclosing ``__init__`` frame of a LightningModule. Clearing the variables and calling from this
    plain function's frame stops both.
    """
    token = _given_hyperparameters.set(None)
    # A CLI-trained checkpoint is rebuilt through jsonargparse, whose instantiators (a context variable
    # LightningCLI sets while it builds the outer module) would wrap it in the outer options again.
    instantiators = class_instantiators.set(None)
    try:
        return build(*args, **kwargs)
    finally:
        class_instantiators.reset(instantiators)
        _given_hyperparameters.reset(token)


def load_stage(cls, path: str | None, option: str):
    """Load a previous stage's checkpoint with a clear error when it is missing or of the wrong kind."""
    if not path:
        raise ValueError(
            f"{option} is required: the path of a {cls.__name__} checkpoint (.ckpt) from the previous stage"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"{option} checkpoint not found: {file}. Train that stage first (see the Makefile targets) or fix the path"
        )
    checkpoint = torch.load(file, map_location="cpu", weights_only=False)
    # LightningCLI adds private keys such as `_class_path`; they are no constructor arguments.
    hparams = {
        k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")
    }
    kind = checkpoint.get("shapvision_module")
    if kind is not None and kind != cls.__name__:
        raise ValueError(
            f"{option} {file} is a {kind} checkpoint, but a {cls.__name__} checkpoint is needed"
        )
    return hparams, checkpoint["state_dict"]


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


def shapvision_identity(module, datamodule) -> dict:
    """Module class, data class and the identity options of a module, as comparable strings."""
    identity = {
        "module": type(module).__name__,
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
        checkpoint["shapvision_module"] = type(self).__name__
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        checkpoint["shapvision_identity"] = shapvision_identity(self, datamodule)
        data = data_description(datamodule)
        if data:
            checkpoint["shapvision_data"] = data
