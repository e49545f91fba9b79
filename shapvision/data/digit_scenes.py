"""An embedded image-text set built from scikit-learn's bundled digits: no download.

A scene is a 32 x 32 image with two digits side by side (each 8 x 8 digit resized to 16 x 16, rows
8..23; the left one in columns 0..15, the right one in 16..31). Each scene has four captions that
name what is in it and where::

    "a 7 on the left and a 2 on the right"   "a 2 on the right and a 7 on the left"
    "a 7 on the left"                         "a 2 on the right"

Scenes are drawn with a fixed ``seed`` from the digits' own stratified train / val / test split (the
split of ``DigitsDataModule``), so no digit image of the test scenes was seen in training. With a
patch-8 tower the grid is 4 x 4 and the right answer of a caption's explanation is known: the four
patches of the digit it names (both digits' eight for the two-digit captions), served as
``caption_patches`` ``(C, N)`` with every evaluation sample. Pixels are ink in [0, 1], standardised with
the training scenes' mean and std, copied to 3 channels.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from shapvision.data.image_text import CaptionedImage, ImageTextDataModule
from shapvision.data.preprocessing import Preprocessing

SCENE_SIZE, DIGIT_SIZE, TOP = 32, 16, 8
PATCH = 8


def scene_captions(left: int, right: int) -> list[str]:
    return [
        f"a {left} on the left and a {right} on the right",
        f"a {right} on the right and a {left} on the left",
        f"a {left} on the left",
        f"a {right} on the right",
    ]


def digit_patches(side: str) -> torch.Tensor:
    """Bool ``(N,)`` over the 4 x 4 grid: the patches a digit on ``side`` covers."""
    grid = torch.zeros(SCENE_SIZE // PATCH, SCENE_SIZE // PATCH, dtype=torch.bool)
    rows = slice(TOP // PATCH, (TOP + DIGIT_SIZE) // PATCH)
    cols = slice(0, DIGIT_SIZE // PATCH) if side == "left" else slice(DIGIT_SIZE // PATCH, None)
    grid[rows, cols] = True
    return grid.flatten()


def caption_patches() -> torch.Tensor:
    """``(4, N)``: the patches each of the four captions names."""
    left, right = digit_patches("left"), digit_patches("right")
    return torch.stack([left | right, left | right, left, right])


class DigitScenesDataModule(ImageTextDataModule):
    def __init__(
        self,
        tokenizer: str = "shapvision-digits-clip",
        img_size: int = SCENE_SIZE,
        batch_size: int = 128,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        captions_per_image: int = 4,
        train_scenes: int = 4000,
        val_scenes: int = 300,
        test_scenes: int = 300,
        seed: int = 0,
    ):
        if img_size != SCENE_SIZE:
            raise ValueError(f"data.img_size must be {SCENE_SIZE} for digit scenes, got {img_size}")
        if not 1 <= captions_per_image <= 4:
            raise ValueError(
                f"digit scenes have 4 captions; data.captions_per_image={captions_per_image}"
            )
        super().__init__(
            tokenizer, img_size, batch_size, num_workers, eval_batch_size, captions_per_image
        )
        self.counts = {"train": train_scenes, "val": val_scenes, "test": test_scenes}
        self.seed = seed
        self.items: dict[str, list[CaptionedImage]] = {}

    @property
    def has_masks(self) -> bool:
        return True

    def _build(self) -> None:
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = F.interpolate(images, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear")
        labels = torch.tensor(digits.target)
        index = torch.arange(len(labels)).numpy()
        rest, test = train_test_split(
            index, test_size=0.15, stratify=labels.numpy(), random_state=self.seed
        )
        train, val = train_test_split(
            rest, test_size=0.15 / 0.85, stratify=labels.numpy()[rest], random_state=self.seed
        )
        generator = torch.Generator().manual_seed(self.seed)
        scenes = {}
        for split, pool in (("train", train), ("val", val), ("test", test)):
            pool = torch.as_tensor(pool)
            pick = pool[torch.randint(len(pool), (self.counts[split], 2), generator=generator)]
            canvas = torch.zeros(len(pick), 1, SCENE_SIZE, SCENE_SIZE)
            canvas[:, :, TOP : TOP + DIGIT_SIZE, :DIGIT_SIZE] = images[pick[:, 0]]
            canvas[:, :, TOP : TOP + DIGIT_SIZE, DIGIT_SIZE:] = images[pick[:, 1]]
            scenes[split] = (canvas, labels[pick])
        mean, std = scenes["train"][0].mean(), scenes["train"][0].std()
        # the normalisation in the data's terms (ink 0 = black), for perturbation metrics
        self.mean, self.std = (float(mean),) * 3, (float(std),) * 3
        regions = caption_patches()
        for split, (canvas, pair_labels) in scenes.items():
            standard = ((canvas - mean) / std).expand(-1, 3, -1, -1).contiguous()
            self.items[split] = [
                CaptionedImage(image, scene_captions(int(a), int(b)), regions)
                for image, (a, b) in zip(standard, pair_labels.tolist(), strict=True)
            ]

    def preprocessing(self) -> Preprocessing | None:
        """A grey image file as these scenes: bright ink on a dark ground."""
        if not self.items:
            return None
        return Preprocessing(
            self.img_size, self.mean, self.std, interpolation="bilinear", grayscale=True
        )

    def split_items(self, split: str) -> list[CaptionedImage]:
        if not self.items:
            self._build()
        return self.items[split]
