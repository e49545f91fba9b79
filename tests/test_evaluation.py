"""The evaluation module: one table per run, DDP equal to one process, clear errors before compute."""

import functools
import json

import lightning as L
import pytest
import torch
import yaml

from shapvision.attribution.perturbation import TargetGame
from shapvision.data import DigitsDataModule
from shapvision.errors import ConfigurationError
from shapvision.modules import Classifier, Evaluation, Explainer

from .helpers import TINY_BACKBONE, run_module, save_checkpoint

cli = functools.partial(run_module, "shapvision.cli")

ALL_METRICS = [
    "shapley_accuracy",
    "insertion_deletion_patches",
    "insertion_deletion_pixels",
    "aopc_lodds",
    "saco",
    "srg",
    "localisation",
    "segmentation",
]
METHODS = [
    "random",
    "rollout",
    "game",
    "gradcam",
    "saliency",
    "smoothgrad",
    "rise",
    "leave_one_out",
    "kernelshap",
]
OPTIONS = {"rise": {"num_masks": 64}, "kernelshap": {"budget": 64}, "smoothgrad": {"samples": 4}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluation")
    torch.manual_seed(0)
    vit = Classifier(
        backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, num_classes=10, img_size=32
    )
    resnet = Classifier(backbone="resnet18", num_classes=10, img_size=32)
    return {
        "vit": save_checkpoint(vit, folder / "vit.ckpt"),
        "resnet": save_checkpoint(resnet, folder / "resnet.ckpt"),
        "folder": folder,
    }


def evaluation_config(folder, name, checkpoint, **trainer):
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "inference_mode": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(folder), "name": name, "version": ""},
            },
            "callbacks": [
                "shapvision.callbacks.EvaluationTableWriter",
                "shapvision.callbacks.HeatmapGridWriter",
            ],
            **trainer,
        },
        "data": {
            "class_path": "shapvision.data.DigitsDataModule",
            # 37 test images: 2-process DDP pads the second shard with a copy of an earlier image
            "init_args": {"test_fraction": 0.0205, "eval_batch_size": 9, "ink_masks": True},
        },
        "model": {
            "class_path": "shapvision.modules.Evaluation",
            "init_args": {
                "checkpoint": checkpoint,
                "methods": METHODS,
                "metrics": ALL_METRICS,
                "method_options": OPTIONS,
                "metric_options": {"shapley_accuracy": {"images": 6}},
                "heatmap_images": 3,
            },
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_evaluation_table_under_ddp_with_padding_equals_one_process(checkpoints):
    folder = checkpoints["folder"]
    results, tables = {}, {}
    for name, extra in (("single", {}), ("ddp", {"devices": 2, "strategy": "ddp"})):
        config = evaluation_config(folder, name, checkpoints["vit"], **extra)
        cli("test", "--config", str(config), cwd=folder)
        results[name] = json.loads((folder / name / "test_metrics.json").read_text())
        tables[name] = json.loads((folder / name / "evaluation.json").read_text())
        assert (folder / name / "evaluation.md").is_file() and (
            folder / name / "heatmaps.png"
        ).is_file()
    rows = tables["single"]["rows"]
    assert [r["method"] for r in rows] == METHODS
    for column in (
        "shapley_pearson",
        "insertion_patches",
        "deletion_pixels",
        "aopc",
        "lodds",
        "saco",
        "srg",
        "rma",
        "rra",
        "mIoU",
        "mAP",
        "pixel_accuracy",
    ):
        assert column in rows[0], column
    assert results["single"].keys() == results["ddp"].keys() and len(results["single"]) > 100
    for key, value in results["single"].items():
        assert results["ddp"][key] == pytest.approx(value, abs=1e-5), key
    # every cell, its bootstrap bounds and the median rank, not only the logged columns
    for single, ddp in zip(rows, tables["ddp"]["rows"], strict=True):
        for key, value in single.items():
            if key != "ms_per_image":
                assert ddp[key] == pytest.approx(value, abs=1e-5, nan_ok=True), key
    per_image = torch.load(folder / "ddp" / "per_image.pt")
    assert per_image["random"]["aopc_lodds"]["key"].tolist() == list(range(37))
    assert per_image["random"]["shapley_accuracy"]["key"].tolist() == list(range(6))
    assert " ± " in (folder / "single" / "evaluation.md").read_text()
    # leave-one-out on N = 16 is close to the exact values of the same game; random is not
    by_method = {r["method"]: r for r in rows}
    assert (
        by_method["leave_one_out"]["shapley_pearson"] > by_method["random"]["shapley_pearson"] + 0.3
    )


def test_bad_input_is_refused_before_compute_naming_the_option(checkpoints, tmp_path):
    vit, resnet = checkpoints["vit"], checkpoints["resnet"]
    with pytest.raises(
        ConfigurationError,
        match=r"model.init_args.checkpoint: checkpoint not found: .*nowhere.ckpt",
    ):
        Evaluation(str(tmp_path / "nowhere.ckpt"))
    with pytest.raises(
        ValueError, match=r"unknown explanation method 'shapley'.*model.init_args.methods"
    ):
        Evaluation(vit, methods=["shapley"])
    with pytest.raises(ValueError, match=r"unknown metric 'auc'.*model.init_args.metrics"):
        Evaluation(vit, metrics=["auc"])
    with pytest.raises(
        ValueError, match=r"method 'rollout' does not apply to .*resnet.ckpt.*TimmResNetBackbone"
    ):
        Evaluation(resnet, methods=["rollout"])
    with pytest.raises(
        ValueError,
        match=r"model.init_args.explainers.fastshap: .* is a Classifier checkpoint, but an amortized explainer \(Explainer\) is needed",
    ):
        Evaluation(vit, explainers={"fastshap": resnet})
    with pytest.raises(
        ValueError, match=r"trained with num_classes=10, but the data has 37 classes"
    ):
        Evaluation(vit, num_classes=37)
    with pytest.raises(ValueError, match=r"trained at img_size=32, but the data gives 224"):
        Evaluation(vit, img_size=224)
    bogus = tmp_path / "bogus.ckpt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(ValueError, match=r"not a shapvision checkpoint"):
        Evaluation(str(bogus))


def test_localisation_metrics_without_masks_and_inference_mode_are_refused(checkpoints):
    module = Evaluation(checkpoints["vit"], methods=["random"], metrics=["localisation"])
    trainer = L.Trainer(
        accelerator="cpu", logger=False, inference_mode=False, enable_progress_bar=False
    )
    with pytest.raises(
        ValueError, match=r"metrics \['localisation'\] need ground-truth masks.*ink_masks: true"
    ):
        trainer.test(module, datamodule=DigitsDataModule(test_fraction=0.02))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(RuntimeError, match="set trainer.inference_mode: false"):
        trainer.test(
            Evaluation(checkpoints["vit"], methods=["random"], metrics=["aopc_lodds"]),
            datamodule=DigitsDataModule(test_fraction=0.02),
        )


def test_a_method_runs_under_several_row_names_with_their_own_options(checkpoints):
    module = Evaluation(
        checkpoints["vit"],
        methods=["kernelshap_64=kernelshap", "kernelshap_128=kernelshap", "random"],
        metrics=["insertion_deletion_patches"],
        method_options={"kernelshap_64": {"budget": 64}, "kernelshap_128": {"budget": 128}},
    )
    assert list(module.methods) == ["kernelshap_64", "kernelshap_128", "random"]
    assert [module.methods[r].budget for r in ("kernelshap_64", "kernelshap_128")] == [64, 128]
    with pytest.raises(ValueError, match=r"method_options names methods not in .*\['kernelshap'\]"):
        Evaluation(
            checkpoints["vit"],
            methods=["kernelshap_64=kernelshap"],
            method_options={"kernelshap": {}},
        )


def test_a_sigmoid_link_explainer_is_scored_on_the_sigmoid_game(tmp_path):
    """The link is one object: an explainer trained on sigmoid(surrogate) is evaluated on that game
    (metrics, perturbation baselines, exact references), and one of another link is refused beside it."""
    torch.manual_seed(0)
    classifier = {
        "backbone": "vit_tiny_patch16_224",
        "backbone_kwargs": TINY_BACKBONE,
        "num_classes": 10,
        "img_size": 32,
    }
    surrogate = {"num_classes": 10, "img_size": 32, "classifier_hparams": classifier}
    explainers = {
        link: save_checkpoint(
            Explainer(num_classes=10, img_size=32, link=link, surrogate_hparams=surrogate),
            tmp_path / f"{link}.ckpt",
        )
        for link in ("sigmoid", "softmax")
    }
    evaluation = Evaluation(
        checkpoint=explainers["sigmoid"],
        methods=["leave_one_out"],
        metrics=["shapley_accuracy"],
    )
    model = evaluation.model
    assert model.link.name == "sigmoid"
    images, target = torch.randn(2, 3, 32, 32), torch.tensor([3, 7])
    keep = torch.rand(2, model.num_patches) > 0.5
    with torch.no_grad():
        logits = model.masked_logits(images, keep)
        expected = logits.sigmoid().gather(1, target.view(-1, 1))[:, 0]
        torch.testing.assert_close(model.masked_probabilities(images, keep, target), expected)
        game = TargetGame(model, images[0], target[0])
        torch.testing.assert_close(game(keep[:1]).float(), expected[:1])
    with pytest.raises(ValueError, match="trained on the softmax game"):
        Evaluation(
            checkpoint=explainers["sigmoid"],
            methods=["random"],
            metrics=["shapley_accuracy"],
            explainers={"softmax_one": explainers["softmax"]},
        )
