"""Top-1 accuracy of the explained model on the evaluated images, each dataset index counted once
(torchmetrics' accuracy would count the copies a DistributedSampler pads the last shard with)."""

import torch

from shapvision.metrics.per_image import PerImageMetric


class Top1Accuracy(PerImageMetric):
    columns = ("accuracy",)
    fields = {"accuracy": 0}
    higher_is_better = {"accuracy": True}

    def update(self, keys: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.record(keys, accuracy=(logits.argmax(-1) == labels).double())
