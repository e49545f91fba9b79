"""Every seeds' table (the `make table-*` targets) end to end on tiny real-format fixtures."""

import csv
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from shapvision.modules import Classifier, CLIPFineTune, Explainer, Surrogate, SVOClassifier

from .helpers import (
    TINY_BACKBONE,
    make_mura,
    run_module,
    save_checkpoint,
    save_vit_pipeline,
    working_copy,
    write_cifar10,
    write_gtsegs_mat,
    write_imagenet_s,
)

# About 13 CLI runs of a few seconds each: run by `make test-slow`, which CI runs after `make test`.
pytestmark = pytest.mark.slow


TINY = [
    "--trainer.accelerator",
    "cpu",
    "--trainer.devices",
    "1",
    "--trainer.limit_test_batches",
    "1",
    "--data.init_args.img_size",
    "32",
    "--data.init_args.num_workers",
    "0",
    "--data.init_args.eval_batch_size",
    "4",
]


def image_folder(root, splits=("train", "val"), classes=("a", "b"), per_class=3):
    for split in splits:
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40, 40), (40 * i, 90, 200 if name == "a" else 20)).save(
                    root / split / name / f"{i}.png"
                )
    return root


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    base = tmp_path_factory.mktemp("tables")
    data, ckpts = base / "data", base / "checkpoints"
    image_folder(data / "imagenet")
    image_folder(data / "oxford-pets", splits=("train", "val", "test"))
    for split in ("val", "test"):
        for name in ("a", "b"):
            (data / "oxford-pets" / "masks" / split / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.tri(40, 40, dtype=np.uint8) * 255).save(
                    data / "oxford-pets" / "masks" / split / name / f"{i}.png"
                )
    image_folder(data / "imagenette2")
    image_folder(data / "WBC", splits=("train", "val", "test"))
    make_mura(data / "MURA-v1.1", patients=4)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (24, 36, 3), dtype=np.uint8) for _ in range(3)]
    masks = [(rng.random((24, 36)) > 0.5).astype(np.uint8) for _ in range(3)]
    write_gtsegs_mat(data / "gtsegs_ijcv.mat", images, masks)
    write_imagenet_s(data / "ImageNetS919")
    common = {"num_classes": 2, "img_size": 32}
    save_checkpoint(
        Classifier(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, **common),
        ckpts / "classifier_vit" / "best.ckpt",
    )
    save_checkpoint(
        Classifier(backbone="resnet18", **common), ckpts / "classifier_resnet" / "best.ckpt"
    )
    save_checkpoint(
        SVOClassifier(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, **common),
        ckpts / "svo_vit" / "best.ckpt",
    )
    save_checkpoint(
        SVOClassifier(backbone="resnet18", **common), ckpts / "svo_resnet" / "best.ckpt"
    )
    for family in ("resnet", "vit"):  # the FastSHAP / ViTShapley rows: surrogate, then explainer
        surrogate = save_checkpoint(
            Surrogate(
                classifier_checkpoint=str(ckpts / f"classifier_{family}" / "best.ckpt"), **common
            ),
            ckpts / f"surrogate_{family}" / "best.ckpt",
        )
        save_checkpoint(
            Explainer(surrogate_checkpoint=surrogate, head_hidden_dim=16, **common),
            ckpts / f"explainer_{family}" / "best.ckpt",
        )
    pipeline = ckpts / "pets"
    (pipeline / "classifier").mkdir(parents=True)
    shutil.copy(ckpts / "classifier_vit" / "best.ckpt", pipeline / "classifier" / "best.ckpt")
    surrogate = save_checkpoint(
        Surrogate(classifier_checkpoint=str(ckpts / "classifier_vit" / "best.ckpt"), **common),
        pipeline / "surrogate" / "best.ckpt",
    )
    save_checkpoint(
        Explainer(surrogate_checkpoint=surrogate, head_hidden_dim=16, **common),
        pipeline / "explainer" / "best.ckpt",
    )
    save_checkpoint(
        Explainer(
            surrogate_checkpoint=surrogate, objective="salvage", head_hidden_dim=16, **common
        ),
        pipeline / "explainer_salvage" / "best.ckpt",
    )
    for dataset in ("imagenette", "mura", "wbc"):
        shutil.copytree(pipeline, ckpts / dataset)
    write_cifar10(data / "cifar10")
    save_vit_pipeline(ckpts / "cifar10", ("fastshap", "simshap"), num_classes=10)
    return data, ckpts, base


def run_driver(fixtures, module, out_name, *arguments):
    """``python -m MODULE ARGUMENTS --data --checkpoints --out -- TINY`` on the fixtures; its table.md."""
    data, ckpts, base = fixtures
    out = base / out_name
    split = arguments.index("--") if "--" in arguments else len(arguments)
    arguments = [
        *arguments[:split],
        "--data",
        str(data),
        "--checkpoints",
        str(ckpts),
        "--out",
        str(out),
        "--",
        *TINY,
        *arguments[split + 1 :],
    ]
    run_module(module, *arguments, cwd=working_copy(base))
    return (out / "table.md").read_text()


def run_table(fixtures, name, *extra):
    return run_driver(fixtures, "shapvision_drivers.tables", name, name, "--", *extra)


def test_svo_faithfulness_table(fixtures):
    table = run_table(fixtures, "svo-faithfulness")
    for row in (
        "| ViT-B/16 | game |",
        "| ViT-B/16 | vit_shapley |",
        "| ViT-B/16 | attcat |",
        "| ResNet-50 | integrated_gradients |",
        "| ResNet-50 | idgi |",
        "| ResNet-50 | fastshap |",
        "| SVO-ViT | svo |",
        "| SVO-ResNet | svo |",
    ):
        assert row in table, table
    assert "| model | method | aopc | lodds | saco |" in table
    # the published figures beside ours: paper column from published.yaml, ours from this run
    paper = list(csv.DictReader((fixtures[2] / "svo-faithfulness" / "paper.csv").open()))
    grad_cam = next(r for r in paper if r["paper row"] == "ViT-B / Grad-CAM")
    ours = next(r for r in csv.DictReader((fixtures[2] / "svo-faithfulness" / "table.csv").open())
                if r["model"] == "ViT-B/16" and r["method"] == "gradcam")  # fmt: skip
    assert float(grad_cam["aopc paper"]) == 0.547
    assert float(grad_cam["aopc ours"]) == pytest.approx(float(ours["aopc"]))
    assert float(grad_cam["aopc diff"]) == pytest.approx(float(ours["aopc"]) - 0.547)
    bagnet = next(r for r in paper if r["paper row"] == "BagNet")
    assert bagnet["aopc ours"] == "" and bagnet["status"].startswith("not run: a self-explaining")
    assert (
        "## Published beside ours" in table
        and "| ViT-B / Grad-CAM | ViT-B/16 / gradcam | 0.5470 |" in table
    )
    # the paired comparison reads the runs just written: one row per column of every run with both
    run_driver(
        fixtures,
        "shapvision_drivers.tables",
        "svo-faithfulness",
        "svo-faithfulness",
        "--compare",
        "game",
        "random",
        "--no-run",
    )
    comparison = (fixtures[2] / "svo-faithfulness" / "comparison.csv").read_text().splitlines()
    assert comparison[0] == "model,column,game,random,difference,p_value,images"
    rows = [line.split(",") for line in comparison[1:]]
    assert {(r[0], r[1]) for r in rows} == {("ViT-B/16", c) for c in ("aopc", "lodds", "saco")}
    assert all(0 < float(r[5]) <= 1 and int(r[6]) > 0 for r in rows)


def test_svo_segmentation_table_on_the_mat_file(fixtures):
    table = run_table(fixtures, "svo-segmentation", "--data.init_args.num_classes", "2")
    assert (
        "| model | method | pixel_accuracy | mAP | mIoU |" in table and "| SVO-ViT | svo |" in table
    )
    assert "| ResNet-50 | fastshap |" in table


def test_svo_segmentation_table_on_imagenet_s(fixtures):
    table = run_table(fixtures, "svo-segmentation-imagenet-s", "--data.init_args.num_classes", "2")
    assert "| SVO-ResNet | svo |" in table and "| ViT-B/16 | vit_shapley |" in table
    rows = list(csv.DictReader((fixtures[2] / "svo-segmentation-imagenet-s" / "table.csv").open()))
    assert {r["model"] for r in rows} == {"ViT-B/16", "ResNet-50", "SVO-ViT", "SVO-ResNet"}
    assert all(0 <= float(r["pixel_accuracy"]) <= 1 for r in rows)
    assert "| ViT-B / GAME | ViT-B/16 / game | 78.1700 |" in table  # the paper beside ours


def test_simshap_table_on_cifar10_batches(fixtures):
    options = [
        "--data.init_args.val_size",
        "10",
        "--model.init_args.method_options",
        "{kernelshap: {budget: 64}}",
        "--model.init_args.metric_options",
        "{shapley_accuracy: {images: 2}}",
    ]
    table = run_table(fixtures, "simshap", *options)
    for row in (
        "| surrogate | fastshap |",
        "| surrogate | simshap |",
        "| surrogate | kernelshap |",
        "| classifier | kernelshap |",
    ):
        assert row in table, table
    assert (
        "| model | method | insertion_pixels | deletion_pixels | shapley_l2 | shapley_pearson | ms_per_image |"
        in table
    )
    paper = list(csv.DictReader((fixtures[2] / "simshap" / "paper.csv").open()))
    simshap = next(r for r in paper if r["paper row"] == "SimSHAP")
    assert float(simshap["insertion_pixels paper"]) == 0.755 and simshap["insertion_pixels ours"]
    ours = next(
        r
        for r in csv.DictReader((fixtures[2] / "simshap" / "table.csv").open())
        if r["model"] == "surrogate" and r["method"] == "simshap"
    )
    # inference seconds: ours are milliseconds per image, scaled by 0.001 into the paper's unit
    assert float(simshap["ms_per_image ours"]) == pytest.approx(float(ours["ms_per_image"]) * 1e-3)
    assert simshap["train_minutes paper"] == "324.1" and simshap["train_minutes ours"] == ""
    deep = next(r for r in paper if r["paper row"] == "DeepSHAP")
    assert deep["status"].startswith("not run: DeepSHAP")


def test_salvage_accuracy_table(fixtures):
    table = run_table(fixtures, "salvage-accuracy")
    for row in (
        "| pets | classifier |",
        "| wbc | salvage |",
        "| imagenette | vit_shapley |",
        "| mura | salvage |",
    ):
        assert row in table, table
    rows = list(csv.DictReader((fixtures[2] / "salvage-accuracy" / "table.csv").open()))
    mura = next(r for r in rows if r["model"] == "mura" and r["method"] == "classifier")
    pets = next(r for r in rows if r["model"] == "pets" and r["method"] == "classifier")
    assert -1 <= float(mura["mcc"]) <= 1 and 0 <= float(mura["f1"]) <= 1
    assert {"precision", "recall", "f1", "mcc"} <= {k for k, v in mura.items() if v != ""}
    assert (
        pets["precision"] == "" and 0 <= float(pets["accuracy"]) <= 1
    )  # multiclass: accuracy only
    paper = list(csv.DictReader((fixtures[2] / "salvage-accuracy" / "paper.csv").open()))
    salvage = next(r for r in paper if r["paper row"] == "Pets / Salvage")
    ours = next(r for r in rows if r["model"] == "pets" and r["method"] == "salvage")
    assert float(salvage["accuracy paper"]) == 93.61
    assert float(salvage["accuracy ours"]) == pytest.approx(100 * float(ours["accuracy"]))
    mcc = next(r for r in paper if r["paper row"] == "MURA / Classifier")
    assert float(mcc["mcc paper"]) == 0.66 and mcc["mcc ours"] != ""


def test_salvage_and_vitshapley_tables(fixtures):
    options = ["--model.init_args.method_options", "{rise: {num_masks: 16}}"]
    table = run_table(fixtures, "salvage", *options)
    for row in (
        "| pets | salvage |",
        "| imagenette | vit_shapley |",
        "| mura | eigencam |",
        "| wbc | salvage |",
    ):
        assert row in table, table
    assert "| WBC / Salvage | wbc / salvage | 69.7000 |" in table  # the poster beside ours
    assert "| srg | r_srg | rma | rra |" in table
    pets_random = next(line for line in table.splitlines() if line.startswith("| pets | random |"))
    imagenette_salvage = next(
        line for line in table.splitlines() if line.startswith("| imagenette | salvage |")
    )
    assert "| srg | r_srg | rma | rra | median_rank |" in table
    rma, rra = (cell.split("±") for cell in pets_random.split("|")[-4:-2])  # mean ± half-width
    assert 0 <= float(rma[0]) <= 1 and 0 <= float(rra[0]) <= 1 and float(rma[1]) > 0
    # a method whose maps have no positive relevance on every image has no RMA: NaN, counted
    with open(fixtures[2] / "salvage" / "table.csv") as handle:
        pets_salvage = next(
            r for r in csv.DictReader(handle) if r["model"] == "pets" and r["method"] == "salvage"
        )
    rma_salvage = float(pets_salvage["rma"])
    assert 0 <= rma_salvage <= 1 or (
        math.isnan(rma_salvage) and float(pets_salvage["rma_undefined"]) > 0
    )
    assert imagenette_salvage.split("|")[-4:-2] == ["  ", "  "]
    options = [
        "--model.init_args.method_options",
        "{rise: {num_masks: 16}, smoothgrad: {samples: 2}}",
    ]
    table = run_table(fixtures, "vitshapley", *options)
    assert (
        "| imagenette | vit_shapley |" in table and "insertion_patches | deletion_patches" in table
    )
    assert "| mura | vit_shapley |" in table and "| pets | kernelshap |" in table
    assert (
        "| MURA / ViT-Shapley | mura / vit_shapley | 0.9710 |" in table
    )  # the paper's, beside ours


def test_svo_accuracy_table_prints_the_paper_beside_ours(fixtures):
    """SVO Table 1 on fixtures: accuracy of every classifier checkpoint, its parameters and FLOPs,
    the published row beside it; the CLIP image towers costed; a missing run says so."""
    ckpts = fixtures[1]
    clip = {"clip_model": "shapvision-digits-clip", "img_size": 32}
    save_checkpoint(CLIPFineTune(**clip), ckpts / "clip" / "best.ckpt")
    lines = run_driver(fixtures, "shapvision_drivers.svo_accuracy", "svo-accuracy").splitlines()
    header = [c.strip() for c in next(line for line in lines if "backbone" in line).split("|")]

    def row(backbone, model):
        line = next(line for line in lines if line.startswith(f"| {backbone} | {model} |"))
        return dict(zip(header, (c.strip() for c in line.split("|")), strict=True))

    svo_vit = row("ViT-B/16", "SVO")
    assert svo_vit["paper row"] == "Ours-V" and float(svo_vit["acc@1 paper"]) == 76.8
    assert 0 <= float(svo_vit["acc@1 ours"]) <= 100 and int(svo_vit["img_size"]) == 32
    accuracy = float(svo_vit["acc@1 ours"])
    assert float(svo_vit["acc@1 diff"]) == pytest.approx(accuracy - 76.8, abs=0.02)
    assert (
        float(row("ResNet-50", "SVO")["GMACs ours"]) > 0
        and float(row("ResNet-50", "plain")["params (M) ours"]) > 0
    )
    tower = row("EVA02-B-16 image tower", "plain")
    assert float(tower["params (M) ours"]) > 0 and "no ImageNet accuracy" in tower["note"]
    assert "not run" in row("EVA02-B-16 image tower", "SVO")["note"]  # no svo_clip checkpoint
