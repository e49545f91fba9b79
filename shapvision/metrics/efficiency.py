"""The efficiency check of a Shapley-type method: do its values add up to what its game pays out?

Per image, gap = |sum_i phi_i - (v(N) - v(empty))|, with v the evaluation's game (the masked
forward through the model's link: the probability of the explained class), or the game of another
link (``link: identity``: the logit game whose Shapley values SVO's votes are meant to be, as for
``shapley_accuracy``). Shapley values of that game have gap 0 (exact and KernelSHAP enforce it; an
amortised explainer is normalised to it; SVO's votes are trained towards it). Only methods whose
values are ``signed`` evidence in the game's units can pass; for ``positive`` and ``magnitude``
methods the image is undefined (counted in ``efficiency_gap_undefined``), and gradient methods
in logit units (IG's completeness is in logits) report their gap as it is. A check, not a ranking:
it is left out of the median rank.
"""

from typing import Literal

import torch

from shapvision.metrics.per_image import PerImageMetric
from shapvision.shapley.links import get_link


class EfficiencyGap(PerImageMetric):
    columns = ("efficiency_gap",)
    fields = {"efficiency_gap": 0}
    needs_method = True

    def __init__(self, link: Literal["softmax", "sigmoid", "identity"] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.link = link

    def update(self, batch, attribution, method) -> None:
        values = batch.patch_values(attribution).double()
        size, n = values.shape
        if getattr(method, "values", "signed") != "signed":
            self.record(batch.keys, efficiency_gap=torch.full((size,), float("nan")))
            return
        keep = torch.cat(
            [torch.ones(size, n, dtype=torch.bool), torch.zeros(size, n, dtype=torch.bool)]
        ).to(values.device)
        link = batch.model.link if self.link is None else get_link(self.link)
        with torch.no_grad():
            logits = batch.model.masked_logits(torch.cat([batch.images, batch.images]), keep)
        payout = link(logits).gather(1, batch.target.repeat(2).view(-1, 1))[:, 0].double()
        total = payout[:size] - payout[size:]
        self.record(batch.keys, efficiency_gap=(values.sum(1) - total).abs())
