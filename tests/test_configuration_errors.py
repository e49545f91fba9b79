"""Every configuration error reaches the user as one ``error: <message>`` line and exit status 2, from
both CLIs and ``shapvision explain``, whatever the constructor of the module or data module raised:
a missing data root, missing weights, a garbage checkpoint, a folder in the wrong layout."""

import logging
import warnings

import pytest
from PIL import Image

from shapvision.cli import main as shapvision_main
from shapvision.cli_runs import silence_lightning_tips
from shapvision.clip_cli import main as clip_main

IMAGENETTE = ["--config", "experiments/imagenette/trainer.yaml"]
IMAGENETTE += ["--config", "experiments/imagenette/classifier.yaml"]
FAST = ["--trainer.accelerator", "cpu", "--data.init_args.num_workers", "0"]


def one_error_line(capsys, main, args: list) -> str:
    """Run ``main(args)``; it must exit with 2 and print exactly one ``error:`` line, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def image_folder(root, layout_ok: bool = True):
    """A two-class ImageFolder dataset (train/ and val/), or the images of one class loose in root."""
    splits = ("train", "val") if layout_ok else ("",)
    for split in splits:
        for label in ("cat", "dog"):
            folder = root / split / label if layout_ok else root
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(folder / f"{label}{i}.png")
    return root


@pytest.fixture(autouse=True)
def cli_environment(monkeypatch):
    monkeypatch.setattr("sys.argv", ["shapvision"])
    monkeypatch.setenv("WEIGHTS", "false")


def test_a_missing_data_root(capsys):
    line = one_error_line(
        capsys,
        shapvision_main,
        ["fit", *IMAGENETTE, *FAST, "--data.init_args.root", "/nonexistent/imagenette"],
    )
    assert line.startswith(
        "error: data.root /nonexistent/imagenette does not exist; expected the layout"
    )


def test_a_folder_in_the_wrong_layout(capsys, tmp_path):
    root = image_folder(tmp_path / "flat", layout_ok=False)
    line = one_error_line(
        capsys, shapvision_main, ["fit", *IMAGENETTE, *FAST, "--data.init_args.root", root]
    )
    assert "train" in line and str(root) in line


def test_missing_weights(capsys, tmp_path):
    root = image_folder(tmp_path / "pets")
    line = one_error_line(
        capsys,
        shapvision_main,
        ["fit", *IMAGENETTE, *FAST, "--data.init_args.root", root]
        + ["--model.init_args.pretrained", tmp_path / "vit_base_patch16_224.safetensors"],
    )
    assert line.startswith("error: pretrained weights file not found: ")
    assert "vit_base_patch16_224.safetensors" in line


def test_a_garbage_checkpoint_given_to_explain(capsys, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    images = image_folder(tmp_path / "mine", layout_ok=False)
    line = one_error_line(
        capsys, shapvision_main, ["explain", garbage, images, "--out", tmp_path / "out"]
    )
    assert line.startswith(f"error: data.init_args.checkpoint: {garbage} is not a readable")


def test_image_text_cli_garbage_and_missing_checkpoints(capsys, tmp_path):
    garbage = tmp_path / "clip.ckpt"
    garbage.write_bytes(b"\x00" * 64)
    config = ["--config", "experiments/digits_clip/trainer.yaml"]
    config += ["--config", "experiments/digits_clip/svo_clip.yaml"]
    line = one_error_line(
        capsys, clip_main, ["fit", *config, "--model.init_args.init_from", garbage]
    )
    assert line.startswith(f"error: model.init_args.init_from: {garbage} is not a readable")
    missing = tmp_path / "runs" / "clip" / "best.ckpt"
    line = one_error_line(
        capsys, clip_main, ["fit", *config, "--model.init_args.init_from", missing]
    )
    assert line.startswith(f"error: model.init_args.init_from: checkpoint not found: {missing}")


def test_image_text_cli_missing_shards(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SHAPVISION_DATA", str(tmp_path / "nowhere"))
    config = ["--config", "experiments/cc3m/trainer.yaml", "--config", "experiments/cc3m/clip.yaml"]
    line = one_error_line(
        capsys, clip_main, ["fit", *config, "--model.init_args.pretrained", "false"]
    )
    assert str(tmp_path / "nowhere" / "cc3m" / "train") in line


def test_the_cli_passes_its_own_arguments_without_lightnings_warning(capsys, monkeypatch):
    """``main()`` reads sys.argv itself and hands it on: no "args and sys.argv" warning."""
    monkeypatch.setattr(
        "sys.argv", ["shapvision", "fit", *IMAGENETTE, "--data.init_args.root", "/nonexistent"]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit):
            shapvision_main()
    assert not [w for w in caught if "args parameter" in str(w.message)]


def test_lightning_tips_are_silenced(caplog):
    silence_lightning_tips()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        logger.info("💡 Tip: For seamless cloud uploads and versioning, try installing litmodels")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
