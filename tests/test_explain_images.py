"""`shapvision explain CHECKPOINT IMAGES`: your own folder of images explained with a checkpoint alone.
The checkpoint (a tiny SVO-ViT trained on an image folder of "cat" and "dog" pictures) records its
preprocessing and class names; the folder holds three readable images, a corrupt one and a text file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from shapvision.data.preprocessing import Preprocessing
from shapvision.explain.prediction_writer import overlay_title, top_classes

from .helpers import TINY_BACKBONE, shapvision


def write_pictures(folder: Path, colour: tuple[int, int, int], count: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = np.clip(rng.normal(colour, 40, size=(40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def svo_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pets")
    for split, count in (("train", 8), ("val", 4)):
        write_pictures(folder / "data" / split / "cat", (200, 80, 60), count, seed=1)
        write_pictures(folder / "data" / split / "dog", (60, 80, 200), count, seed=2)
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "limit_val_batches": 1,
            "enable_progress_bar": False,
            "logger": False,
            "default_root_dir": str(folder),  # the run's config.yaml lands here, not in the cwd
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(folder / "ckpt"), "filename": "best"},
                }
            ],
        },
        "data": {
            "class_path": "shapvision.data.ImageFolderDataModule",
            "init_args": {
                "root": str(folder / "data"),
                "img_size": 32,
                "batch_size": 4,
                "num_workers": 0,
            },
        },
        "model": {
            "class_path": "shapvision.modules.SVOClassifier",
            "init_args": {"backbone": "vit_tiny_patch16_224", "backbone_kwargs": TINY_BACKBONE},
        },
    }
    (folder / "fit.yaml").write_text(yaml.safe_dump(config))
    shapvision("fit", "--config", folder / "fit.yaml", cwd=folder)
    return folder / "ckpt" / "best.ckpt"


@pytest.mark.slow  # trains a tiny SVO-ViT first (module fixture)
def test_a_checkpoint_records_its_preprocessing_and_class_names(svo_checkpoint):
    data = torch.load(svo_checkpoint, weights_only=False)["shapvision_data"]
    assert data["class_names"] == ["cat", "dog"]
    assert Preprocessing.from_dict(data["preprocessing"]) == Preprocessing(
        32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.875, "bilinear"
    )


@pytest.mark.slow  # trains a tiny SVO-ViT first (module fixture)
def test_explain_a_folder_with_a_corrupt_file(svo_checkpoint, tmp_path):
    mine = tmp_path / "my images"
    write_pictures(mine, (190, 90, 70), 3, seed=3)
    (mine / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (mine / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = shapvision(
        "explain", svo_checkpoint, mine, "--out", out, "--trainer.accelerator", "cpu"
    )
    assert "skipped 1 unreadable image file(s)" in result.stdout
    assert "broken.jpg" in result.stderr  # named in the warning
    stems = sorted(p.stem for p in out.glob("*.npy"))
    assert stems == ["000000_0", "000001_1", "000002_2"]  # index 3 (broken.jpg) has no output
    for stem in stems:
        assert np.load(out / f"{stem}.npy").shape == (16, 2)  # 4 x 4 patches, 2 classes
        record = json.loads((out / f"{stem}.json").read_text())
        assert {t["class"] for t in record["top"]} == {"cat", "dog"}
        assert record["file"].endswith(f"{stem.split('_')[1]}.png")
        assert (out / f"{stem}.png").stat().st_size > 0
    # the votes add up to the logits, whose softmax is the score written
    values = torch.from_numpy(np.load(out / "000000_0.npy"))
    record = json.loads((out / "000000_0.json").read_text())
    probabilities = values.sum(0).softmax(-1)
    assert record["top"][0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_overlay_titles_name_the_top_classes():
    top = top_classes(torch.tensor([0.1, 0.7, 0.2]), ["cat", "dog", "bird"], k=2)
    assert [t["class"] for t in top] == ["dog", "bird"]
    assert overlay_title("000001_x", top) == "000001_x: dog (0.70), bird (0.20)"
    caption = top_classes(torch.tensor([1.234]), None, k=1)
    assert overlay_title("s", caption, "a 3 on the left") == "s: 'a 3 on the left', score 1.23"


@pytest.mark.slow  # trains a tiny SVO-ViT first (module fixture)
def test_explain_refuses_a_checkpoint_that_does_not_explain_or_a_missing_caption(
    svo_checkpoint, tmp_path
):
    image = tmp_path / "one.png"
    write_pictures(tmp_path / "single", (100, 100, 100), 1, seed=4)
    image = tmp_path / "single" / "0.png"
    result = shapvision(
        "explain", svo_checkpoint, image, "--caption", "a cat", "--trainer.accelerator", "cpu",
        check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "give one for SVOCLIP checkpoints and none for SVOClassifier" in result.stderr
    result = shapvision("explain", tmp_path / "missing.ckpt", image, check=False)
    assert result.returncode == 2 and "checkpoint not found" in result.stderr


def digit_scene_file(path: Path) -> Path:
    """A scene like the embedded set's: two bright digits on a dark ground, side by side."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    canvas = np.zeros((32, 32), dtype=np.uint8)
    for column, index in ((0, 3), (16, 7)):
        digit = Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8)).resize((16, 16))
        canvas[8:24, column : column + 16] = np.asarray(digit)
    Image.fromarray(canvas).save(path)
    return path


@pytest.mark.slow  # trains two tiny chains (digits ViT-Shapley, digit-scene CLIP -> SVO-CLIP)
def test_explain_with_an_explainer_and_with_svo_clip_and_a_caption(
    tmp_path, isolated_working_directory
):
    """The tiny runs go under runs/ like any run (the configs' paths), in the test's working directory."""
    run_id = "tiny"
    tiny = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
            "--run_id", run_id]  # fmt: skip
    digits = ["--config", "experiments/digits/trainer.yaml"]
    runs = isolated_working_directory / "runs" / "digits"
    shapvision("fit", *digits, "--config", "experiments/digits/classifier.yaml", *tiny)
    classifier = runs / "classifier" / run_id / "best.ckpt"
    shapvision("fit", *digits, "--config", "experiments/digits/surrogate.yaml", *tiny,
               "--model.init_args.classifier_checkpoint", classifier)  # fmt: skip
    surrogate = runs / "surrogate" / run_id / "best.ckpt"
    shapvision("fit", *digits, "--config", "experiments/digits/explainer_fastshap.yaml", *tiny,
               "--model.init_args.surrogate_checkpoint", surrogate)  # fmt: skip
    explainer = runs / "explainer_fastshap" / run_id / "best.ckpt"
    classifier.unlink()
    surrogate.unlink()  # the explainer's checkpoint alone
    scene = digit_scene_file(tmp_path / "scene.png")
    out = tmp_path / "explainer"
    shapvision("explain", explainer, scene, "--out", out, "--trainer.accelerator", "cpu")
    record = json.loads((out / "000000_scene.json").read_text())
    assert len(record["top"]) == 3 and {t["class"] for t in record["top"]} <= set("0123456789")
    assert np.load(out / "000000_scene.npy").shape == (16, 10)
    scores = [t["score"] for t in record["top"]]  # the surrogate's probabilities, best first
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] and sum(scores) <= 1 + 1e-6
    assert (out / "config.yaml").is_file() and not (
        isolated_working_directory / "config.yaml"
    ).exists()

    clip = ["--config", "experiments/digits_clip/trainer.yaml"]
    clip_checkpoint = (
        isolated_working_directory / "runs" / "digits_clip" / "clip" / run_id / "best.ckpt"
    )
    for stage, extra in (
        ("clip", []),
        ("svo_clip", ["--model.init_args.init_from", clip_checkpoint]),
    ):
        shapvision("fit", *clip, "--config", f"experiments/digits_clip/{stage}.yaml", *tiny, *extra,
                   cli="shapvision.clip_cli")  # fmt: skip
    svo_clip = (
        isolated_working_directory / "runs" / "digits_clip" / "svo_clip" / run_id / "best.ckpt"
    )
    out = tmp_path / "svo_clip"
    shapvision("explain", svo_clip, scene, "--caption", "a 3 on the left", "--out", out,
               "--trainer.accelerator", "cpu")  # fmt: skip
    record = json.loads((out / "000000_scene.json").read_text())
    votes = np.load(out / "000000_scene.npy")
    assert record["caption"] == "a 3 on the left" and votes.shape == (16, 1)
    # the score is the sum of the votes (efficiency of SVO-CLIP's own game)
    assert record["top"][0]["score"] == pytest.approx(float(votes.sum()), abs=1e-4)
