"""A checkpoint that does not fit the configured run is refused before any compute, with one message
that names the option and both values, and no traceback (exit status 2): a missing file, another
module, another class count or image size; and an image size that is not a multiple of the patch."""

import pytest
import torch

from shapvision.cli import main
from shapvision.modules import Classifier, SVOClassifier
from shapvision.modules.identity import shapvision_identity

from .helpers import TINY_BACKBONE, fit_config


def save_checkpoint(path, module) -> str:
    """A checkpoint in the format the suite writes (kind, identity, weights), without training."""
    torch.save(
        {
            "shapvision_module": type(module).__name__,
            "shapvision_identity": shapvision_identity(module, None),
            "state_dict": module.state_dict(),
        },
        path,
    )
    return str(path)


def classifier(**options) -> Classifier:
    kwargs = dict(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, img_size=32)
    return Classifier(**{**kwargs, "num_classes": 10, **options})


def refused(capsys, monkeypatch, *args) -> str:
    monkeypatch.setattr("sys.argv", ["shapvision"])
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return fit_config(tmp_path_factory.mktemp("config"))


def test_a_missing_checkpoint_file(capsys, monkeypatch, config, tmp_path):
    err = refused(
        capsys, monkeypatch, "test", "--config", config, "--ckpt_path", tmp_path / "nope.ckpt"
    )
    assert f"error: --ckpt_path: checkpoint not found: {tmp_path / 'nope.ckpt'}" in err


def test_a_checkpoint_of_another_module(capsys, monkeypatch, config, tmp_path):
    svo = SVOClassifier(
        backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, img_size=32, num_classes=10
    )
    path = save_checkpoint(tmp_path / "svo.ckpt", svo)
    err = refused(capsys, monkeypatch, "predict", "--config", config, "--ckpt_path", path)
    assert (
        f"--ckpt_path {path} is a SVOClassifier checkpoint, but the model (--model) is Classifier"
        in err
    )


def test_another_class_count_or_image_size(capsys, monkeypatch, config, tmp_path):
    path = save_checkpoint(tmp_path / "pets.ckpt", classifier(num_classes=37))
    err = refused(capsys, monkeypatch, "validate", "--config", config, "--ckpt_path", path)
    assert (
        "num_classes (model.init_args.num_classes, linked from data.num_classes): "
        "checkpoint 37, config 10" in err
    )
    path = save_checkpoint(tmp_path / "large.ckpt", classifier(img_size=64))
    err = refused(capsys, monkeypatch, "test", "--config", config, "--ckpt_path", path)
    assert (
        "img_size (model.init_args.img_size, linked from data.init_args.img_size): "
        "checkpoint 64, config 32" in err
    )


def test_an_image_size_that_is_not_a_multiple_of_the_patch(capsys, monkeypatch, config):
    err = refused(capsys, monkeypatch, "fit", "--config", config, "--data.init_args.img_size", "30")
    assert (
        "img_size 30 is not a multiple of the patch size 8 of vit_tiny_patch16_224: the last 6 "
        "pixels of every row and column would be cut off. Use 24 or 32" in err
    )
