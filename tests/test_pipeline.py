"""The ViT-Shapley pipeline through the real CLI: stages chain, DDP equals one process, errors are clear."""

import functools
import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from shapvision.data import DigitsDataModule
from shapvision.errors import ConfigurationError
from shapvision.modules import Classifier, Explainer, Surrogate, SVOClassifier

from .helpers import TINY_BACKBONE, run_module, save_checkpoint, write_config

cli = functools.partial(run_module, "shapvision.cli")


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Tiny classifier and surrogate checkpoints trained with the CLI."""
    folder = tmp_path_factory.mktemp("runs")
    classifier = write_config(
        folder,
        "classifier",
        {
            "class_path": "shapvision.modules.Classifier",
            "init_args": {
                "backbone": "vit_tiny_patch16_224",
                "backbone_kwargs": TINY_BACKBONE,
                "lr": 1e-3,
                "warmup_steps": 0,
            },
        },
    )
    cli("fit", "--config", str(classifier), cwd=folder)
    surrogate = write_config(
        folder,
        "surrogate",
        {
            "class_path": "shapvision.modules.Surrogate",
            "init_args": {
                "classifier_checkpoint": str(folder / "classifier" / "best.ckpt"),
                "lr": 1e-3,
                "warmup_steps": 0,
            },
        },
    )
    cli("fit", "--config", str(surrogate), cwd=folder)
    return folder


def explainer_model(folder, **overrides):
    init = {
        "surrogate_checkpoint": str(folder / "surrogate" / "best.ckpt"),
        "objective": {
            "class_path": "shapvision.objectives.FastSHAP",
            "init_args": {"num_masks": 4},
        },
        "head_hidden_dim": 32,
        "lr": 1e-3,
        **overrides,
    }
    return {"class_path": "shapvision.modules.Explainer", "init_args": init}


def evaluate_single_and_ddp(
    folder, checkpoint, methods, metrics, metric_options=None, method_options=None
):
    """The evaluation table of ``checkpoint`` in one process and under 2-process DDP."""
    model = {
        "class_path": "shapvision.modules.Evaluation",
        "init_args": {
            "checkpoint": str(checkpoint),
            "methods": methods,
            "metrics": metrics,
            "metric_options": metric_options or {},
            "method_options": method_options or {},
        },
    }
    results = {}
    for name, extra in (("single", {}), ("ddp", {"devices": 2, "strategy": "ddp"})):
        config = write_config(folder, f"evaluation_{name}", model, inference_mode=False, **extra)
        cli("test", "--config", str(config), cwd=folder)
        results[name] = json.loads(
            (folder / f"evaluation_{name}" / "test_metrics.json").read_text()
        )
    assert results["single"].keys() == results["ddp"].keys()
    for key, value in results["single"].items():
        assert results["ddp"][key] == pytest.approx(value, abs=1e-5), key
    return results["single"]


def test_ddp_fit_and_evaluation_equal_single_process(stages):
    folder = stages
    fit_config = write_config(
        folder, "explainer_ddp", explainer_model(folder), devices=2, strategy="ddp"
    )
    cli("fit", "--config", str(fit_config), cwd=folder)
    checkpoint = folder / "explainer_ddp" / "best.ckpt"
    cli("test", "--config", str(fit_config), "--ckpt_path", str(checkpoint), cwd=folder)
    assert "test/loss" in json.loads((folder / "explainer_ddp" / "test_metrics.json").read_text())
    metrics = evaluate_single_and_ddp(
        folder,
        checkpoint,
        ["kernelshap"],
        ["shapley_accuracy", "insertion_deletion_patches"],
        {"shapley_accuracy": {"images": 4}},
        {"kernelshap": {"budget": 64}},
    )
    assert (
        "test/explainer/shapley_pearson" in metrics
        and "test/kernelshap/insertion_patches" in metrics
    )


def svo_model(**overrides):
    init = {
        "backbone": "vit_tiny_patch16_224",
        "backbone_kwargs": TINY_BACKBONE,
        "num_masks": 2,
        "paired": True,
        "lr": 1e-3,
        "warmup_steps": 0,
        **overrides,
    }
    return {"class_path": "shapvision.modules.SVOClassifier", "init_args": init}


def test_svo_ddp_fit_and_evaluation_equal_single_process_and_checkpoint_explains_itself(tmp_path):
    fit_config = write_config(tmp_path, "svo", svo_model(), devices=2, strategy="ddp")
    cli("fit", "--config", str(fit_config), cwd=tmp_path)
    checkpoint = tmp_path / "svo" / "best.ckpt"
    accuracy = {}
    for name, extra in (("single", {}), ("ddp", {"devices": 2, "strategy": "ddp"})):
        config = write_config(tmp_path, f"svo_test_{name}", svo_model(), **extra)
        cli("test", "--config", str(config), "--ckpt_path", str(checkpoint), cwd=tmp_path)
        metrics = json.loads((tmp_path / f"svo_test_{name}" / "test_metrics.json").read_text())
        accuracy[name] = (metrics["test/acc"], metrics["test/ce"])
    assert accuracy["ddp"] == pytest.approx(accuracy["single"], abs=1e-5)
    metrics = evaluate_single_and_ddp(
        tmp_path,
        checkpoint,
        ["svo"],
        ["shapley_accuracy", "insertion_deletion_patches", "insertion_deletion_pixels"],
        {"shapley_accuracy": {"images": 4, "link": "identity"}},
    )
    assert "test/svo/shapley_pearson" in metrics and "test/svo/deletion_pixels" in metrics
    model = SVOClassifier.load_from_checkpoint(checkpoint).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            model.explain(images).sum(1), model(images), atol=1e-5, rtol=1e-5
        )


def test_stage_checkpoints_load_alone_and_explain(stages, tmp_path):
    surrogate = Surrogate.load_from_checkpoint(stages / "surrogate" / "best.ckpt").eval()
    images = torch.randn(2, 3, 32, 32)
    keep = torch.rand(2, 16) > 0.5
    assert (
        surrogate(images, keep).shape == (2, 10)
        and surrogate.num_patches == 16
        and surrogate.grid_size == (4, 4)
    )
    explainer = Explainer(
        surrogate_checkpoint=str(stages / "surrogate" / "best.ckpt"),
        num_classes=10,
        img_size=32,
        head_hidden_dim=16,
    )
    path = save_checkpoint(explainer, tmp_path / "explainer.ckpt")
    loaded = Explainer.load_from_checkpoint(path).eval()
    with torch.no_grad():
        phi = loaded.explain(images)
        v_full, v_empty = loaded.endpoint_values(images)
    assert phi.shape == (2, 16, 10)
    torch.testing.assert_close(
        phi.sum(1), v_full - v_empty, rtol=0, atol=1e-5
    )  # fastshap: efficient by construction


def test_bad_configuration_is_a_clear_error_before_training(stages, tmp_path):
    classifier = str(stages / "classifier" / "best.ckpt")
    surrogate = str(stages / "surrogate" / "best.ckpt")
    with pytest.raises(
        ConfigurationError, match=r"classifier_checkpoint: checkpoint not found: .*missing\.ckpt"
    ):
        Surrogate(classifier_checkpoint=str(tmp_path / "missing.ckpt"), num_classes=10, img_size=32)
    with pytest.raises(ValueError, match="num_classes=10, but the data has 5 classes"):
        Surrogate(classifier_checkpoint=classifier, num_classes=5, img_size=32)
    with pytest.raises(ValueError, match="img_size=32 .* but the data gives 64"):
        Surrogate(classifier_checkpoint=classifier, num_classes=10, img_size=64)
    with pytest.raises(ValueError, match=r"objective must be one of .*'shapley'"):
        Explainer(surrogate_checkpoint=surrogate, num_classes=10, img_size=32, objective="shapley")
    with pytest.raises(
        ValueError, match="is a Classifier checkpoint, but a Surrogate checkpoint is needed"
    ):
        Explainer(surrogate_checkpoint=classifier, num_classes=10, img_size=32)
    with pytest.raises(ValueError, match="surrogate_checkpoint is required"):
        Explainer(num_classes=10, img_size=32)


def test_nan_loss_stops_training_naming_the_step():
    class ExplodingClassifier(Classifier):
        def forward(self, images, keep=None):
            logits = super().forward(images, keep)
            return logits * float("nan") if self.global_step == 2 else logits

    model = ExplodingClassifier(
        backbone="vit_tiny_patch16_224",
        num_classes=10,
        img_size=32,
        backbone_kwargs=TINY_BACKBONE,
        warmup_steps=0,
    )
    data = DigitsDataModule(batch_size=16)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    with pytest.raises(FloatingPointError, match="train/loss is nan at global step 2"):
        trainer.fit(model, data)


@pytest.mark.parametrize(
    "cli_module, experiment",
    [
        ("shapvision.cli", e)
        for e in ("digits", "imagenette", "pets", "imagenet", "mura", "wbc", "cifar10")
    ]
    + [("shapvision.clip_cli", e) for e in ("digits_clip", "cc3m")],
)
def test_experiment_configs_parse(cli_module, experiment, tmp_path, capsys, monkeypatch):
    """Every stage config of every experiment is valid for its CLI (parsed in-process, not run)."""
    import importlib

    main = importlib.import_module(cli_module).main
    folder = Path(__file__).resolve().parents[1] / "experiments" / experiment
    monkeypatch.chdir(tmp_path)
    for stage in sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "trainer"):
        args = [
            "fit",
            "--config",
            str(folder / "trainer.yaml"),
            "--config",
            str(folder / f"{stage}.yaml"),
        ]
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--print_config"])
        assert exit_info.value.code in (0, None), stage
        config = yaml.safe_load(capsys.readouterr().out)
        assert config["model"]["class_path"].startswith("shapvision.modules."), stage


def test_predict_writes_values_and_overlays_per_image(stages, tmp_path):
    import numpy as np
    from PIL import Image

    from shapvision.data import ImageFolderDataModule
    from shapvision.explain import ShapleyPredictionWriter

    for split in ("train", "val"):
        (tmp_path / "data" / split / "a").mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(tmp_path / "data" / split / "a" / "x.png")
    (tmp_path / "photos").mkdir()
    for name, colour in (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255))):
        Image.new("RGB", (50, 40), colour).save(tmp_path / "photos" / f"{name}.png")
    data = ImageFolderDataModule(
        str(tmp_path / "data"),
        img_size=32,
        batch_size=2,
        num_workers=0,
        predict_dir=str(tmp_path / "photos"),
    )
    explainer = Explainer(
        surrogate_checkpoint=str(stages / "surrogate" / "best.ckpt"),
        num_classes=10,
        img_size=32,
        head_hidden_dim=16,
    ).eval()
    writer = ShapleyPredictionWriter(str(tmp_path / "out"))
    trainer = L.Trainer(
        accelerator="cpu", callbacks=[writer], logger=False, enable_progress_bar=False
    )
    trainer.predict(explainer, datamodule=data, return_predictions=False)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    # named by dataset index (sorted paths: blue, green, red), then the source file
    assert written == [
        f"{i:06d}_{c}.{e}"
        for i, c in enumerate(("blue", "green", "red"))
        for e in ("json", "npy", "png")
    ]
    # the data's one class name ("a") does not name the explainer's 10 outputs: indices instead
    top = json.loads((tmp_path / "out" / "000001_green.json").read_text())["top"]
    assert [t["class"] for t in top] == [str(t["index"]) for t in top]
    with torch.no_grad():
        expected = explainer.explain(data.predict_set[1]["image"].unsqueeze(0))[0]
    np.testing.assert_allclose(
        np.load(tmp_path / "out" / "000001_green.npy"), expected.numpy(), atol=1e-6
    )


def test_a_stage_built_inside_a_cli_module_keeps_its_own_hyperparameters(stages, tmp_path):
    """The CLI builds a module with its own constructor arguments as hyperparameters (none of
    LightningCLI's config dump), and a module built inside another's constructor keeps its own
    (Lightning's frame walk would merge the outer module's init arguments into it)."""
    from shapvision.modules.checkpoints import load_module

    saved = torch.load(stages / "surrogate" / "best.ckpt", weights_only=False)["hyper_parameters"]
    assert not [key for key in saved if key.startswith("_")]
    options = {
        "surrogate_checkpoint": str(stages / "surrogate" / "best.ckpt"),
        "num_classes": 10,
        "img_size": 32,
    }
    explainer = Explainer(**options)
    surrogate = load_module(str(stages / "surrogate" / "best.ckpt"), "option")
    assert (
        "objective" not in explainer.surrogate.hparams
        and "classifier_hparams" in explainer.surrogate.hparams
    )
    assert "objective" not in surrogate.hparams and surrogate.hparams.num_classes == 10


def test_salvage_explainer_reports_its_own_classification_and_refuses_other_links(stages, tmp_path):
    surrogate = str(stages / "surrogate" / "best.ckpt")
    options = {
        "surrogate_checkpoint": surrogate,
        "num_classes": 10,
        "img_size": 32,
        "head_hidden_dim": 16,
    }
    explainer = Explainer(objective="salvage", **options)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        limit_test_batches=2,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    result = trainer.test(explainer, datamodule=DigitsDataModule(eval_batch_size=16))[0]
    assert 0 <= result["test/own_classification_acc"] <= 1 and result["test/loss"] >= 0
    assert (
        "test/own_classification_acc"
        not in trainer.test(Explainer(**options), datamodule=DigitsDataModule(eval_batch_size=16))[
            0
        ]
    )
    with pytest.raises(ValueError, match="link must be softmax, got 'sigmoid'"):
        Explainer(objective="salvage", link="sigmoid", **options)
