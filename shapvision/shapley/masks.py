"""Validation of coalition masks: bool tensors ``(..., N)``, True = player present."""

import torch


def check_masks(masks: torch.Tensor, num_players: int, name: str = "masks") -> None:
    """Raise a clear error unless ``masks`` is a bool tensor whose last dimension is ``num_players``."""
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of dtype bool, got {type(masks).__name__}")
    if masks.dtype != torch.bool:
        raise TypeError(
            f"{name} must have dtype torch.bool (True = player present), got {masks.dtype}; "
            f"convert with `{name}.bool()` if the values are 0/1"
        )
    if masks.dim() == 0 or masks.shape[-1] != num_players:
        raise ValueError(
            f"{name} must have shape (..., {num_players}) (one column per player), got {tuple(masks.shape)}"
        )


def enumerate_coalitions(
    start: int, stop: int, num_players: int, device: torch.device | None = None
) -> torch.Tensor:
    """Coalitions ``start .. stop-1`` of the binary enumeration: bit i of the index = player i present."""
    index = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(num_players, device=device, dtype=torch.int64)
    return (index.unsqueeze(1) >> bits).bitwise_and(1).bool()


def full_and_empty(num_players: int, device: torch.device | None = None) -> torch.Tensor:
    """The grand coalition and the empty coalition, bool ``(2, N)``."""
    return torch.arange(2, device=device).unsqueeze(1).expand(2, num_players) == 0
