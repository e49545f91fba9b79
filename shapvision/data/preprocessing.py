"""How a data module turns an image file into the model's input, recorded in every checkpoint so an
image from anywhere can be explained with the checkpoint alone (``shapvision explain``).

The suite's one evaluation transform is timm's (``timm.data.create_transform``, not training):
resize the shorter side to ``img_size / crop_pct``, centre-crop ``img_size``, scale to [0, 1],
normalise with ``mean`` / ``std`` (open_clip's evaluation transform is the same with crop_pct 1).
Images are converted to RGB first; ``grayscale`` images (the digits sets) are read as one channel and
copied to three.
"""

from dataclasses import asdict, dataclass

from timm.data import create_transform
from torchvision import transforms


@dataclass(frozen=True)
class Preprocessing:
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    grayscale: bool = False

    def transform(self):
        evaluation = create_transform(
            self.img_size,
            is_training=False,
            interpolation=self.interpolation,
            crop_pct=self.crop_pct,
            mean=self.mean,
            std=self.std,
        )
        convert = transforms.Grayscale(3) if self.grayscale else transforms.Lambda(to_rgb)
        return transforms.Compose([convert, evaluation])

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(**{**values, "mean": tuple(values["mean"]), "std": tuple(values["std"])})


def to_rgb(image):
    return image.convert("RGB")
