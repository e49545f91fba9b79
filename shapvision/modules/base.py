"""What every LightningModule of the suite shares: training machinery alone (the optimizer and its
schedule, independent random streams per rank saved in checkpoints, a NaN guard). Run directories and
metric files are written by callbacks (:mod:`shapvision.callbacks.run_records`)."""

import math
from contextlib import contextmanager

import lightning as L
import torch
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
