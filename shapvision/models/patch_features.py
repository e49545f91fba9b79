"""The one output type of every masked backbone."""

from dataclasses import dataclass

import torch


@dataclass
class PatchFeatures:
    """Features of one batch under patch masks.

    - ``tokens`` ``(B, N, L)``: patch features in row-major grid order; rows of removed patches are 0,
      so every backbone returns the same layout whatever it computed internally.
    - ``keep`` ``(B, N)`` bool: the mask that was applied (all True for an unmasked forward).
    - ``prefix`` ``(B, P, L)`` or None: CLS / register tokens after the final norm, for backbones that have them.
    - ``pooled`` ``(B, L)`` or None: the backbone's own pooled feature (CLS token or mean over kept patches).
    """

    tokens: torch.Tensor
    keep: torch.Tensor
    prefix: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
