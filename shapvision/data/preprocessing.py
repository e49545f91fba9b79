"""How a data module turns an image file into the model's input, recorded in every checkpoint so an
image from anywhere can be explained with the checkpoint alone (``shapvision explain``).

Resize the shorter side to ``img_size / crop_pct``, centre-crop ``img_size``, scale to [0, 1],
normalise with ``mean`` / ``std``: timm's evaluation transform (and open_clip's, with crop_pct 1).
``grayscale`` images (the digits sets) are read as one channel and copied to three.
"""

import math
from dataclasses import asdict, dataclass

from torchvision import transforms
from torchvision.transforms import InterpolationMode


@dataclass(frozen=True)
class Preprocessing:
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    grayscale: bool = False

    def transform(self):
        scale_size = math.floor(self.img_size / self.crop_pct)
        return transforms.Compose(
            [
                transforms.Grayscale(3) if self.grayscale else transforms.Lambda(to_rgb),
                transforms.Resize(scale_size, interpolation=InterpolationMode(self.interpolation)),
                transforms.CenterCrop(self.img_size),
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ]
        )

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(**{**values, "mean": tuple(values["mean"]), "std": tuple(values["std"])})


def to_rgb(image):
    return image.convert("RGB")
