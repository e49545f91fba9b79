"""AOPC and LOdds: the top pixels removed at increasing fractions (AttCAT's definitions, image version).

For fractions f in ``fractions`` (default 10 %, 20 %, ..., 90 %, the usual ViT adaptation; AttCAT's
text code uses k / 9), the top ``int(H * W * f)`` pixels of the pixel map are set to ``fill``: a
scalar (0 = the dataset mean in normalised space, our default) or one value per channel, e.g.
Chefer's black, ``-mean / std`` of the data's normalisation (Chefer's code sets pixels to 0 before
normalising). With p = softmax probability of the ground-truth label (the explained class where
there is no label):
- AOPC = mean over images and fractions of |p(x) - p(x_f)| (AttCAT's code takes the absolute
  difference; ``absolute=false`` keeps the sign, Quantus's AOPC). Higher is better.
- LOdds = mean of log(p(x_f) / p(x)). Lower is better.
"""

from shapvision.metrics.explanation_batch import as_fill, remove_top_fractions
from shapvision.metrics.per_image import PerImageMetric

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class AOPCLOdds(PerImageMetric):
    columns = ("aopc", "lodds")
    fields = {"aopc": 0, "lodds": 0}
    higher_is_better = {"aopc": True, "lodds": False}

    def __init__(
        self,
        fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
        fill: float | list[float] = 0.0,
        absolute: bool = True,
        eps: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not fractions or not all(0 < f <= 1 for f in fractions):
            raise ValueError(f"AOPC fractions must lie in (0, 1], got {fractions}")
        self.fractions, self.absolute, self.eps = tuple(fractions), absolute, eps
        self.fill = fill if isinstance(fill, int | float) else tuple(fill)

    def update(self, batch, attribution) -> None:
        classes = batch.label_or_target
        removed = remove_top_fractions(
            batch.images,
            batch.pixel_map(attribution),
            self.fractions,
            as_fill(self.fill, batch.images),
        )
        perturbed = (
            batch.probabilities(removed, classes.repeat_interleave(len(self.fractions)))
            .view(-1, len(self.fractions))
            .double()
        )
        original = batch.original_probability(classes).double().unsqueeze(1)
        drop = original - perturbed
        lodds = perturbed.clamp_min(self.eps).log() - original.clamp_min(self.eps).log()
        self.record(
            batch.keys, aopc=(drop.abs() if self.absolute else drop).mean(1), lodds=lodds.mean(1)
        )
