"""The objective of an amortized explainer, as one object chosen by ``class_path`` in the config.

An objective owns everything that differs between FastSHAP, SimSHAP and Salvage: how many outputs
per patch the explainer head has, how raw outputs become attributions, which masks a step draws,
and the loss. The Explainer module only wires the surrogate's values through it.
"""

import inspect
from typing import Literal

import torch

from shapvision.shapley.samplers import ShapleyKernelSampler


class ExplainerObjective:
    name = "objective"
    classifies = False  # True where ``classify`` gives the explainer's own class logits

    def __init__(self, num_masks: int = 32, paired: bool = True):
        if num_masks < 1 or (paired and num_masks % 2):
            raise ValueError(
                f"objective num_masks must be >= 1, and even with paired=true; got {num_masks} (paired={paired})"
            )
        self.num_masks, self.paired = num_masks, paired
        self.num_patches = None

    def bind(self, num_patches: int) -> None:
        """Called by the Explainer once the patch grid is known."""
        self.num_patches = num_patches
        self.kernel_sampler = ShapleyKernelSampler(num_patches, paired=self.paired)

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    def check_link(self, link: str) -> None:
        """Refuse a link the objective is not defined for (before any compute)."""

    def attributions(
        self, raw: torch.Tensor, v_full: torch.Tensor, v_empty: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def sample_masks(
        self, raw: torch.Tensor, v_full: torch.Tensor, v_empty: torch.Tensor
    ) -> torch.Tensor:
        """Masks ``(B, M, N)`` for one step: Shapley-kernel draws (paired: each followed by its complement)."""
        return self.kernel_sampler.sample(
            self.num_masks, batch_size=raw.shape[0], device=raw.device
        )

    def loss(self, raw, masks, values, v_full, v_empty) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, raw: torch.Tensor) -> torch.Tensor | None:
        """Class logits the explainer itself predicts, for objectives that define one (Salvage's u(N))."""
        return None

    def config(self) -> dict:
        """The objective as the CLI writes one (``class_path`` / ``init_args``): plain data, so a
        checkpoint's hyperparameters hold no pickled object."""
        parameters = inspect.signature(type(self).__init__).parameters
        return {
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            "init_args": {name: getattr(self, name) for name in parameters if name != "self"},
        }

    def __repr__(self) -> str:
        options = ", ".join(
            f"{k}={v!r}"
            for k, v in vars(self).items()
            if k not in ("kernel_sampler", "num_patches", "guided_sampler")
        )
        return f"{type(self).__name__}({options})"


ACTIVATIONS = {"tanh": torch.tanh, "identity": lambda x: x}


class ActivatedObjective(ExplainerObjective):
    """An objective whose attributions pass the raw outputs through ``activation`` (ViT-Shapley: tanh)."""

    def __init__(
        self,
        num_masks: int = 32,
        paired: bool = True,
        activation: Literal["tanh", "identity"] = "tanh",
    ):
        super().__init__(num_masks, paired)
        self.activation = activation

    def activated(self, raw: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](raw)
