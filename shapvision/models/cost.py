"""What a model costs per image: parameters and FLOPs of its inference forward, measured.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions,
2 FLOPs per multiply-add) on one image, with attention on PyTorch's math kernel so that its two
matrix products are counted (the counter does not see inside the fused CPU kernel). The SVO paper's
Table 1 counts multiply-adds ("17.6B" for ViT-B/16 at 224), so ``multiply_adds`` is FLOPs / 2.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    flops: int

    @property
    def multiply_adds(self) -> float:
        return self.flops / 2


@torch.no_grad()
def measure_cost(
    network: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], img_size: int
) -> ModelCost:
    """Parameters of ``network`` and FLOPs of ``forward`` on one ``3 x img_size x img_size`` image."""
    parameter = next(network.parameters())
    image = torch.zeros(1, 3, img_size, img_size, device=parameter.device, dtype=parameter.dtype)
    return ModelCost(
        sum(p.numel() for p in network.parameters()), count_flops(lambda: forward(image))
    )


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` (its backward too, when it runs one), attention on the math kernel."""
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


class FlopTally(TorchDispatchMode):
    """The FLOPs of every op torch's flop counter has a formula for, summed, with those run inside
    the forward of ``split`` modules counted apart (``split_flops``).

    Unlike ``FlopCounterMode`` it tracks no module hierarchy: ``FlopCounterMode``'s backward hooks
    refuse ``torch.autograd.grad`` with respect to a leaf input, which every captum gradient method
    calls. Use it under ``sdpa_kernel(SDPBackend.MATH)`` so attention's products are seen.
    """

    def __init__(self, split: nn.Module | None = None):
        super().__init__()
        self.total = 0
        self.split_flops = 0
        self._inside_split = 0
        if split is not None:
            split.register_forward_pre_hook(lambda *_: self._enter())
            split.register_forward_hook(lambda *_: self._leave())

    def _enter(self):
        self._inside_split += 1

    def _leave(self):
        self._inside_split -= 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            flops = formula(*args, **kwargs, out_val=out)
            self.total += flops
            if self._inside_split:
                self.split_flops += flops
        return out
