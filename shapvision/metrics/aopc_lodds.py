"""AOPC and LOdds: the top pixels removed at increasing fractions (AttCAT's definitions, image version).

For fractions f in ``fractions`` (default 10 %, 20 %, ..., 90 %, the usual ViT adaptation; AttCAT's
text code uses k / 9), the top ``int(H * W * f)`` pixels of the pixel map are set to ``fill`` (0 =
the dataset mean in normalised space; Chefer's code sets them to black before normalisation, which
our normalised tensors cannot know, so that is not the default). With p = softmax probability of the
ground-truth label (the explained class where there is no label):
- AOPC = mean over images and fractions of |p(x) - p(x_f)| (AttCAT's code takes the absolute
  difference; ``absolute=false`` keeps the sign). Higher is better.
- LOdds = mean of log(p(x_f) / p(x)). Lower is better.
"""

import torch
from torchmetrics import Metric

from shapvision.metrics.explanation_batch import remove_top_fractions

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class AOPCLOdds(Metric):
    full_state_update = False
    columns = ("aopc", "lodds")

    def __init__(
        self,
        fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
        fill: float = 0.0,
        absolute: bool = True,
        eps: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not fractions or not all(0 < f <= 1 for f in fractions):
            raise ValueError(f"AOPC fractions must lie in (0, 1], got {fractions}")
        self.fractions, self.fill, self.absolute, self.eps = tuple(fractions), fill, absolute, eps
        for name in ("aopc_sum", "lodds_sum"):
            self.add_state(
                name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, batch, attribution) -> None:
        classes = batch.label_or_target
        removed = remove_top_fractions(
            batch.images, batch.pixel_map(attribution), self.fractions, self.fill
        )
        perturbed = (
            batch.probabilities(removed, classes.repeat_interleave(len(self.fractions)))
            .view(-1, len(self.fractions))
            .double()
        )
        original = batch.original_probability(classes).double().unsqueeze(1)
        drop = original - perturbed
        self.aopc_sum += (drop.abs() if self.absolute else drop).mean(1).sum()
        self.lodds_sum += (
            (perturbed.clamp_min(self.eps).log() - original.clamp_min(self.eps).log()).mean(1).sum()
        )
        self.count += removed.shape[0] // len(self.fractions)

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp_min(1)
        return {"aopc": (self.aopc_sum / count).float(), "lodds": (self.lodds_sum / count).float()}
