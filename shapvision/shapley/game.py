"""Evaluation of a value function ("game") on coalition masks, in batches, with shape checks.

A value function maps bool masks ``(M, N)`` to values ``(M,)`` or ``(M, K)``. Estimators see games
only through :class:`GameEvaluator`, which enforces that contract, keeps outputs 2-D ``(M, K)``
internally and counts evaluations, so every estimator reports its budget the same way.
"""

from collections.abc import Callable

import torch

from shapvision.chunked import map_chunks
from shapvision.shapley.masks import check_masks

ValueFunction = Callable[[torch.Tensor], torch.Tensor]


class GameEvaluator:
    """Calls ``value_fn`` on at most ``batch_size`` masks at a time and checks what it returns."""

    def __init__(self, value_fn: ValueFunction, num_players: int, batch_size: int):
        if not callable(value_fn):
            raise TypeError(f"value_fn must be callable, got {type(value_fn).__name__}")
        if not isinstance(num_players, int) or num_players < 1:
            raise ValueError(f"num_players must be a positive int, got {num_players!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.value_fn = value_fn
        self.num_players = num_players
        self.batch_size = batch_size
        self.num_evals = 0
        self.scalar_output: bool | None = None
        self.num_outputs: int | None = None
        self.dtype: torch.dtype | None = None

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """Values ``(M, K)`` for masks ``(M, N)``; a scalar game gets K = 1."""
        check_masks(masks, self.num_players)
        return map_chunks(
            self._evaluate, masks, chunk=self.batch_size, what="a game's value function"
        )

    def _evaluate(self, masks: torch.Tensor) -> torch.Tensor:
        values = self.value_fn(masks)
        num_masks = masks.shape[0]
        if not isinstance(values, torch.Tensor):
            raise TypeError(f"value_fn must return a torch.Tensor, got {type(values).__name__}")
        if values.dim() not in (1, 2) or values.shape[0] != num_masks:
            raise ValueError(
                f"value_fn returned shape {tuple(values.shape)} for {num_masks} masks; "
                f"expected ({num_masks},) or ({num_masks}, K)"
            )
        if not values.is_floating_point():
            raise TypeError(f"value_fn must return floating-point values, got {values.dtype}")
        scalar = values.dim() == 1
        values = values.unsqueeze(1) if scalar else values
        if self.scalar_output is None:
            self.scalar_output, self.num_outputs, self.dtype = scalar, values.shape[1], values.dtype
        elif (scalar, values.shape[1]) != (self.scalar_output, self.num_outputs):
            raise ValueError(
                "value_fn returned outputs of inconsistent shape across calls: "
                f"first {self.num_outputs} output(s), now {values.shape[1]}"
            )
        self.num_evals += num_masks
        return values

    def finalize(self, values: torch.Tensor) -> torch.Tensor:
        """Cast float64 accumulators back to the game's dtype; drop K = 1 again for scalar games."""
        values = values.to(self.dtype)
        return values.squeeze(-1) if self.scalar_output else values
