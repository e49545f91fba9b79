"""What several test modules share (no test module imports another): tiny model settings, CLI configs,
real-format fixture writers, hand-computable models, and the one helper that runs a CLI or driver in
a process of its own."""

import csv
import io
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import yaml
from PIL import Image

from shapvision.models.masked_backbone import MaskedBackbone, pixel_mask

REPOSITORY = Path(__file__).resolve().parents[1]


def working_copy(folder: Path) -> Path:
    """``folder`` with the repository's experiments/ linked in: commands run there find the configs
    by their usual relative paths and write every output (runs/, config.yaml, logs) inside it."""
    link = folder / "experiments"
    if not link.exists():
        link.symlink_to(REPOSITORY / "experiments")
    return folder


def shapvision(*args, check=True, cli="shapvision.cli", cwd=None):
    """A CLI run (``cli``: the module, e.g. ``shapvision.clip_cli``) in ``cwd``, by default the
    test's working directory (a module-scoped fixture passes its own)."""
    env = {"PYTHONPATH": str(REPOSITORY)}  # the crash / preemption stand-ins under tests/
    return run_module(cli, *args, cwd=cwd or Path.cwd(), check=check, env=env, timeout=600)


def run_module(module, *args, cwd, check: bool = True, env: dict | None = None, timeout=900):
    """``python -m module args`` (or ``python module args`` for a script's path) in a process of its
    own, in ``cwd`` (a test's temporary directory, never the repository); with ``check`` it must exit
    with 0, else its output's tail is the failure."""
    if Path(cwd).resolve() == REPOSITORY:
        raise ValueError(
            "run_module: run in a temporary directory (working_copy), not the repository"
        )
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    target = [str(module)] if str(module).endswith(".py") else ["-m", module]
    result = subprocess.run(
        [sys.executable, *target, *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


TINY_BACKBONE = {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


def write_config(folder: Path, stage: str, model: dict, **trainer) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "limit_train_batches": 3,
            "limit_val_batches": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(folder), "name": stage, "version": ""},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(folder / stage),
                        "filename": "best",
                        "enable_version_counter": False,
                    },
                }
            ],
            **trainer,
        },
        "data": {
            "class_path": "shapvision.data.DigitsDataModule",
            "init_args": {"img_size": 32, "batch_size": 32, "eval_batch_size": 64},
        },
        "model": model,
    }
    path = folder / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit_config(folder: Path, callbacks=(), **model_options) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 3,
            "limit_train_batches": 6,
            "limit_val_batches": 1,
            "limit_test_batches": 2,
            "num_sanity_val_steps": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(folder / "root"),
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(folder / "logs"), "name": "classifier"},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(folder / "checkpoints"),
                        "filename": "best",
                        "save_last": True,
                        "enable_version_counter": False,
                    },
                },
                *callbacks,
            ],
        },
        "data": {
            "class_path": "shapvision.data.DigitsDataModule",
            "init_args": {"img_size": 32, "batch_size": 32, "eval_batch_size": 64},
        },
        "model": {
            "class_path": "shapvision.modules.Classifier",
            "init_args": {
                "backbone": "vit_tiny_patch16_224",
                "backbone_kwargs": TINY_BACKBONE,
                "lr": 1e-3,
                **model_options,
            },
        },
    }
    path = folder / f"config_{len(list(folder.glob('config_*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def final_state(folder: Path, run_id: str) -> tuple[dict, dict]:
    """The weights of the run's last.ckpt and its last validation metrics (metrics.csv)."""
    last = folder / "checkpoints" / run_id / "last.ckpt"
    weights = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    with open(folder / "logs" / "classifier" / run_id / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/acc")]
    return weights, {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}


def jpeg(color=(10, 200, 30), size=(20, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_shards(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    key = 0
    for shard, size in enumerate(sizes):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for _ in range(size):
                name = f"{key:09d}"
                for ext, data in (
                    ("jpg", jpeg((key * 9 % 255, 90, 40))),
                    ("txt", f"caption number {key}".encode()),
                    ("json", json.dumps({"key": name, "status": "success"}).encode()),
                ):
                    info = tarfile.TarInfo(f"{name}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                key += 1
        (folder / f"{shard:05d}_stats.json").write_text(
            json.dumps({"count": size, "successes": size})
        )
    return folder


def karpathy_fixture(root):
    images = []
    for i, split in enumerate(["train", "restval", "val", "test", "test", "test"]):
        folder = "val2014" if split != "train" else "train2014"
        (root / folder).mkdir(parents=True, exist_ok=True)
        if i != 5:  # the last test image is missing on disk
            (root / folder / f"COCO_{i}.jpg").write_bytes(jpeg((40 * i, 20, 20)))
        sentences = [
            {"raw": f"image {i} caption {j}", "tokens": []} for j in range(6 if i == 3 else 5)
        ]
        images.append(
            {
                "filename": f"COCO_{i}.jpg",
                "filepath": folder,
                "split": split,
                "sentences": sentences,
            }
        )
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    return root


class MeanPixelModel:
    """A 2 x 2 grid of 2 x 2 patches on 4 x 4 one-channel images; logits = [0, 4 * mean pixel].

    p(class 1) = sigmoid(4 * mean pixel): every perturbation has a score computable by hand.
    """

    grid_size, num_patches, patch_size = (2, 2), 4, 2

    def logits(self, images):
        m = images.mean((1, 2, 3))
        return torch.stack([torch.zeros_like(m), 4 * m], 1)

    @staticmethod
    def link(logits):
        return logits.softmax(-1)

    def masked_logits(self, images, keep):
        return self.logits(
            images * pixel_mask(keep, self.grid_size, self.patch_size).to(images.dtype)
        )

    def probabilities(self, images, target):
        return self.logits(images).softmax(-1).gather(1, target.view(-1, 1)).squeeze(1)

    def masked_probabilities(self, images, keep, target):
        return self.masked_logits(images, keep).softmax(-1).gather(1, target.view(-1, 1)).squeeze(1)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# One image whose four patches hold the constants 4, 3, 2, 1 (row-major): patch values are the mean
# contributions 1, 0.75, 0.5, 0.25 to the mean pixel (2.5 in all).
IMAGE = torch.tensor([[4.0, 4, 3, 3], [4, 4, 3, 3], [2, 2, 1, 1], [2, 2, 1, 1]]).view(1, 1, 4, 4)


MODEL = MeanPixelModel()


RELEVANT = 6  # the one patch the model looks at, of a 4 x 4 grid of 8 px patches


class GridOnly(MaskedBackbone):
    grid_size, patch_size, embed_dim = (4, 4), 8, 0


class OnePatchClassifier(nn.Module):
    """Logits = a small MLP of the pixels of patch ``RELEVANT`` alone; removed patches are zeroed."""

    def __init__(self):
        super().__init__()
        self.net = SimpleNamespace(backbone=GridOnly())
        self.grid_size, self.num_patches = (4, 4), 16
        self.hparams = SimpleNamespace(num_classes=3, img_size=32)
        generator = torch.Generator().manual_seed(0)
        self.hidden = nn.Linear(3 * 64, 16)
        self.out = nn.Linear(16, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)

    def forward(self, images, keep=None):
        if keep is not None:
            images = images * pixel_mask(keep, self.grid_size, 8).to(images.dtype)
        row, col = divmod(RELEVANT, 4)
        patch = images[:, :, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8]
        return self.out(torch.tanh(self.hidden(patch.flatten(1))))


def write_gtsegs_mat(path, images, masks):
    """A tiny gtsegs_ijcv.mat in the real structure (MATLAB v7.3 references, column-major arrays)."""
    import h5py
    import numpy as np

    with h5py.File(path, "w") as handle:
        refs = handle.create_group("#refs#")
        img_refs, gt_refs = [], []
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            img_refs.append(
                refs.create_dataset(f"img{i}", data=np.asarray(image).transpose(2, 1, 0)).ref
            )
            gt = refs.create_dataset(f"gt{i}", data=np.asarray(mask).transpose(1, 0))
            holder = refs.create_dataset(f"gtref{i}", (1, 1), dtype=h5py.ref_dtype)
            holder[0, 0] = gt.ref
            gt_refs.append(holder.ref)
        value = handle.create_group("value")
        value.create_dataset("img", data=np.array(img_refs, dtype=h5py.ref_dtype).reshape(-1, 1))
        value.create_dataset("gt", data=np.array(gt_refs, dtype=h5py.ref_dtype).reshape(-1, 1))


def make_mura(root, patients=10, corrupt=False):
    for split, count in (("train", patients), ("valid", 2)):
        for p in range(count):
            for study, outcome in ((1, "negative"), (2, "positive" if p % 2 else "negative")):
                folder = root / split / "XR_WRIST" / f"patient{p:05d}" / f"study{study}_{outcome}"
                folder.mkdir(parents=True)
                for k in range(2):
                    Image.new("L", (40, 30), color=60 * k).save(folder / f"image{k + 1}.png")
    if corrupt:
        (
            root / "train" / "XR_WRIST" / "patient00000" / "study1_negative" / "image1.png"
        ).write_bytes(b"x")
    return root


def save_checkpoint(module, path):
    from shapvision.modules.checkpoints import save_untrained_checkpoint

    return save_untrained_checkpoint(module, path)


def save_vit_pipeline(
    folder: Path, objectives=(), num_classes: int = 2, img_size: int = 32
) -> dict:
    """A tiny ViT classifier, its surrogate and an explainer per objective in ``objectives``, saved as
    ``folder/<stage>/best.ckpt`` (classifier, surrogate, explainer_<objective>); their paths by stage."""
    from shapvision.modules import Classifier, Explainer, Surrogate

    common = {"num_classes": num_classes, "img_size": img_size}
    paths = {
        "classifier": save_checkpoint(
            Classifier(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, **common),
            folder / "classifier" / "best.ckpt",
        )
    }
    paths["surrogate"] = save_checkpoint(
        Surrogate(classifier_checkpoint=paths["classifier"], **common),
        folder / "surrogate" / "best.ckpt",
    )
    for objective in objectives:
        paths[f"explainer_{objective}"] = save_checkpoint(
            Explainer(
                surrogate_checkpoint=paths["surrogate"],
                objective=objective,
                head_hidden_dim=16,
                **common,
            ),
            folder / f"explainer_{objective}" / "best.ckpt",
        )
    return paths


def write_cifar10(root: Path, per_batch: int = 20, test: int = 10) -> Path:
    """CIFAR-10's python batches in their real format: pickles of ``data`` (n, 3072) uint8,
    channel-major, and ``labels``; ``batches.meta`` with the label names. Image k of a batch has red
    ``k``, green ``2k`` and blue ``255 - k`` everywhere, label k mod 10."""
    import pickle

    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]

    def batch(count: int) -> dict:
        k = np.arange(count)
        planes = np.stack([k, 2 * k, 255 - k], 1).astype(np.uint8)  # (n, 3)
        data = np.repeat(planes[:, :, None], 1024, 2).reshape(count, 3072)
        return {b"data": data, b"labels": list(k % 10), b"batch_label": b"fixture"}

    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch(per_batch)))
    (root / "test_batch").write_bytes(pickle.dumps(batch(test)))
    meta = {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": per_batch}
    (root / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def write_imagenet_s(root: Path, wnids=("n01443537", "n01491361"), per_class: int = 2) -> Path:
    """An ImageNet-S release folder: validation/<wnid>/*.JPEG and validation-segmentation/<wnid>/*.png,
    masks RGB with the class id R + 256 G. Each image's object is its top half (class ids 1 and 2);
    its bottom-right quarter is ignore (1000 = R 232, G 3)."""
    for c, wnid in enumerate(wnids):
        (root / "validation" / wnid).mkdir(parents=True)
        (root / "validation-segmentation" / wnid).mkdir(parents=True)
        for i in range(per_class):
            name = f"ILSVRC2012_val_{c * per_class + i:08d}"
            pixels = np.full((20, 24, 3), 40 * (i + 1), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "validation" / wnid / f"{name}.JPEG")
            mask = np.zeros((20, 24, 3), dtype=np.uint8)
            mask[:10, :, 0] = c + 1
            mask[10:, 12:] = (232, 3, 0)
            Image.fromarray(mask).save(root / "validation-segmentation" / wnid / f"{name}.png")
    return root
