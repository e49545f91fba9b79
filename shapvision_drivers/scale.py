"""The cost model of docs/scale.md: FLOPs and GPU-hours of every training run and every seeds' table.

    python -m shapvision_drivers.scale                     # writes docs/scale.md (minutes on a CPU)
    python -m shapvision_drivers.scale --folders digits --tables demo --out /tmp/scale.md

What is measured, and how (every FLOP count uses ``torch.utils.flop_counter``'s formulas, through
``FlopCounterMode`` or, for evaluations, whose gradient methods it refuses, ``FlopTally``; attention on
PyTorch's math kernel so that its matrix products are counted; 2 FLOPs per multiply-add):

- **Training runs**: every ``fit`` template in experiments/slurm/ (the SLURM command that runs it).
  The module is built from the run's own configs at its real size with random weights (the
  checkpoint of the stage before it, named by the config, built and saved the same way; pretrained
  weights files are not read: they change no FLOP), and one training step on two synthetic images
  (captions for the image-text models) is counted, forward and backward. The run's FLOPs are that
  per image x the training images per epoch (experiments/scale.yaml) x ``trainer.max_epochs``.
- **Seeds' tables**: every ``table-*`` template. Each run of the table is its Evaluation /
  ImageTextEvaluation config, on a *proxy* of its checkpoints: the same configs and the same patch
  grid and image size, narrower networks (ViTs: 96 wide, 2 blocks, explainer heads narrowed by the
  same factor; ResNets: ResNet-18; CLIP: EVA02-B-16's timm Eva trunk 96 wide with its 12 blocks, so
  that methods which read a block by its index (M2IB's ``layer: 9``) find it, and a 2-block text
  tower), so the methods' thousands of masked forwards run in seconds. One test step on one image is
  counted and expressed in forwards of the explained model (vision) and of the text tower (per
  caption); times the real model's forward, measured at real size, that is the FLOPs per test image. Metrics that score only the first
  ``images`` test images (``shapley_accuracy``) are counted on those only: the step is counted
  once with dataset indices 0, 1 and once with indices past every limit.
- **GPU-hours** = FLOPs / (peak x MFU) on the device of experiments/scale.yaml (one H100 SXM, 989
  dense bf16 TFLOP/s, at the MFU stated there): an estimate, not a measurement; the tables run in
  float32 (their trainer config), whose tensor-core peak (TF32) is half the bf16 one, which the
  estimate includes.

The proxy keeps every method's number of forwards and each forward's kept tokens, but a narrow
network spends a larger share of its FLOPs on attention (at 197 tokens: 25 % of a 96-wide block,
4 % of ViT-B's), so a forward with half the tokens dropped counts as about 0.44 of a full one where
ViT-B pays 0.49, and an explainer's one extra head block weighs more beside 2 proxy blocks than
beside 12: estimates of token-dropping methods are low by up to about 10 %.
"""

import argparse
import copy
import functools
import importlib
import inspect
import json
import multiprocessing
import re
import shlex
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning as L
import open_clip
import timm
import torch
import yaml
from timm.models import register_model
from torch.nn.attention import SDPBackend, sdpa_kernel

from shapvision.metrics.registry import METRICS
from shapvision.models.cost import FlopTally, count_flops
from shapvision.modules.checkpoints import save_untrained_checkpoint
from shapvision.table_files import markdown_table
from shapvision_drivers.passthrough import EXPERIMENTS

SLURM = EXPERIMENTS / "slurm"
SCALE_FILE = EXPERIMENTS / "scale.yaml"
TABLES_FILE = EXPERIMENTS / "tables" / "tables.yaml"
PROXY_VIT = {"embed_dim": 96, "depth": 2, "num_heads": 3}
REAL_VIT_WIDTH = 768  # ViT-B's, which every ViT run of the tables uses
PROXY_CLIP = "shapvision-scale-proxy-clip"
# the test images an evaluation's step is counted on (every method's cost is per image)
EVALUATION_IMAGES = 1
# indices past every "first K images" limit of a metric (shapley_accuracy's ``images``)
UNLIMITED_INDEX = 10**9


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def merge(base: dict, update: dict) -> dict:
    """jsonargparse's merge of two configs, for what the cost model reads: dicts merge, the rest
    replaces, and a ``class_path`` of another class replaces its ``init_args`` too (as jsonargparse
    drops the arguments of the class it replaces)."""
    if "class_path" in update and update["class_path"] != base.get("class_path"):
        return copy.deepcopy(update)
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merged_configs(paths: list[str]) -> dict:
    config: dict = {}
    for path in paths:
        config = merge(config, read_yaml(EXPERIMENTS.parent / path))
    return config


def templates(kind: str) -> dict[str, str]:
    """The SLURM templates' names and their ``srun`` lines: ``fit`` runs or ``table`` runs."""
    found = {}
    for path in sorted(SLURM.glob("*.sbatch")):
        line = next((ln for ln in path.read_text().splitlines() if ln.startswith("srun ")), "")
        if (kind == "table") == path.stem.startswith("table-") and line:
            found[path.stem] = line
    return found


def fit_configs(srun_line: str) -> list[str]:
    words = shlex.split(srun_line)
    return [words[i + 1] for i, word in enumerate(words) if word == "--config"]


def training_config_of(checkpoint: str) -> list[str]:
    """The configs that train the checkpoint a path names: ``runs/<folder>/<stage>/best.ckpt``, or
    ``${CHECKPOINTS}/<stage>/best.ckpt`` (the ImageNet and CC3M runs) / ``${CHECKPOINTS}/<folder>/<stage>/...``."""
    path = re.sub(r"^(runs/|\$\{CHECKPOINTS\}/)", "", checkpoint)
    parts = Path(path).parent.parts
    candidates = (
        [EXPERIMENTS / parts[0] / f"{parts[1]}.yaml"]
        if len(parts) == 2
        else [EXPERIMENTS / folder / f"{parts[0]}.yaml" for folder in ("imagenet", "cc3m")]
    )
    for candidate in candidates:
        if candidate.exists():
            folder = candidate.parent
            relative = [
                str(p.relative_to(EXPERIMENTS.parent)) for p in (folder / "trainer.yaml", candidate)
            ]
            return [p for p in relative if (EXPERIMENTS.parent / p).exists()]
    raise FileNotFoundError(
        f"no training config for checkpoint {checkpoint!r} (looked for {candidates})"
    )


def class_of(class_path: str) -> type:
    """The class a config's ``class_path`` names."""
    module_name, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


@register_model
def shapvision_scale_proxy_vit(pretrained: bool = False, **kwargs):
    """The CLIP proxy's image trunk: EVA02-B-16's timm Eva (so every method of SVO Tables 5-6 applies,
    the CLIP explainers included) with its 16 px patches at 224, 96 wide and as deep as EVA02-B-16 (12
    blocks: M2IB reads a block by its index, ``layer: 9``)."""
    options = {k: v for k, v in kwargs.items() if not k.startswith("pretrained")}
    return timm.create_model(
        "eva02_base_patch16_clip_224",
        pretrained=False,
        embed_dim=PROXY_VIT["embed_dim"],
        depth=12,
        num_heads=PROXY_VIT["num_heads"],
        **options,
    )


def register_proxy_clip(folder: Path) -> None:
    config = {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": 224,
            "timm_model_name": "shapvision_scale_proxy_vit",
            "timm_model_pretrained": False,
            "timm_pool": "token",
            "timm_proj": None,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 128,
            "heads": 2,
            "layers": 2,
        },
    }
    (folder / f"{PROXY_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


class ModuleFactory:
    """Builds the modules of training configs (at real size, or as proxies) with random weights and
    saves the checkpoints that later stages and evaluations name, once per config."""

    def __init__(self, folder: Path, proxy: bool, datasets: dict):
        self.folder, self.proxy, self.datasets = folder, proxy, datasets
        self.saved: dict[tuple, str] = {}

    def model_arguments(self, model: dict) -> dict:
        args = copy.deepcopy(model.get("init_args", {}))
        for key in list(args):
            value = args[key]
            if key in ("pretrained", "init_from"):
                args[key] = None if key == "init_from" else False
            elif key.endswith("checkpoint") and isinstance(value, str):
                args[key] = self.checkpoint(value)
            elif key == "explainers" and isinstance(value, dict):
                args[key] = {name: self.checkpoint(path) for name, path in value.items()}
        if self.proxy:
            if "backbone" in args and not args.get("backbone_kwargs"):
                if "resnet" in args["backbone"]:
                    args["backbone"] = "resnet18"
                else:
                    args["backbone_kwargs"] = dict(PROXY_VIT)
            if "clip_model" in args and args.get("img_size", 224) == 224:
                args["clip_model"] = PROXY_CLIP
            if args.get("head_hidden_dim"):  # the explainer head, narrowed as its backbone is
                args["head_hidden_dim"] = round(
                    args["head_hidden_dim"] * PROXY_VIT["embed_dim"] / REAL_VIT_WIDTH
                )
        return args  # an explainer's objective stays a class_path dict: the Explainer builds it

    def build(self, config: dict):
        model = config["model"]
        cls = class_of(model["class_path"])
        args = self.model_arguments(model)
        parameters = inspect.signature(cls.__init__).parameters
        for option, value in linked_data_options(config, self.datasets).items():
            if option in parameters and option not in model.get("init_args", {}):
                args[option] = (
                    value  # shapvision.cli links data.img_size / num_classes to the model
                )
        return cls(**args)

    def checkpoint(self, path: str) -> str:
        configs = training_config_of(path)
        key = tuple(configs)
        if key not in self.saved:
            module = self.build(merged_configs(configs))
            target = self.folder / f"{len(self.saved)}-{Path(configs[-1]).stem}.ckpt"
            save_untrained_checkpoint(module, target)
            self.saved[key] = str(target)
        return self.saved[key]


def synthetic_batch(
    module, images: int, img_size: int, num_classes: int, index_start: int = 0
) -> dict:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(images, 3, img_size, img_size, generator=generator)
    index = torch.arange(index_start, index_start + images)
    if hasattr(module, "tokenize"):
        captions = [f"a photo of object number {i} on the left" for i in range(images)]
        return {"image": pixels, "text": module.tokenize(captions)}
    return {"image": pixels, "label": torch.arange(images) % num_classes, "index": index}


def training_flops_per_image(module) -> float:
    module.train()
    module.log = lambda *a, **k: None  # no Trainer attached
    img_size = int(module.hparams.get("img_size", 224))
    num_classes = int(module.hparams.get("num_classes") or 2)
    batch = synthetic_batch(module, 2, img_size, num_classes)
    torch.manual_seed(0)

    def step():
        module.training_step(batch, 0).backward()

    flops = count_flops(step)
    module.zero_grad(set_to_none=True)
    return flops / 2


def training_rows(factory: ModuleFactory, scale: dict, folders: set[str] | None, log) -> list[dict]:
    rows = []
    for name, line in templates("fit").items():
        folder = name.split("-", 1)[0]
        if folders and folder not in folders:
            continue
        config = merged_configs(fit_configs(line))
        data = scale["datasets"][dataset_key(config)]
        started = time.perf_counter()
        torch.manual_seed(0)
        per_image = training_flops_per_image(factory.build(config))
        epochs = int(config.get("trainer", {}).get("max_epochs", 1))
        total = per_image * data["train"] * epochs if data.get("train") else None
        precision = "bf16" if "bf16" in str(config.get("trainer", {}).get("precision")) else "fp32"
        log(
            f"  {name}: {per_image / 1e9:.2f} GFLOP / image ({time.perf_counter() - started:.0f} s)"
        )
        petaflops, hours = amount(total, scale, precision)
        rows.append(
            {
                "run": name,
                "GFLOP / image": f"{per_image / 1e9:,.2f}",
                "images x epochs": f"{data['train']:,} x {epochs}"
                if data.get("train")
                else f"? x {epochs}",
                "PFLOP": petaflops,
                "H100-hours": hours,
                "data": data["name"],
                "SLURM": f"`sbatch experiments/slurm/{name}.sbatch`",
            }
        )
    return rows


def gpu_hours(flops: float, scale: dict, precision: str) -> str:
    device = scale["device"]
    peak = device["peak_tflops"][precision] * 1e12
    return f"{flops / (peak * scale['mfu']) / 3600:,.1f}"


class SyntheticData(L.LightningDataModule):
    """Two test images in the batch format of the data modules, with ground-truth masks / caption regions."""

    has_masks = True

    def __init__(self, batch: dict):
        super().__init__()
        self.batch = batch

    def test_dataloader(self):
        return torch.utils.data.DataLoader([self.batch], batch_size=None)


def evaluation_module(factory: ModuleFactory, config: dict):
    """The run's evaluation module on the factory's checkpoints; a pretrained weights file (the
    zero-shot rows) is the factory's CLIP with random weights, saved once."""
    model = config["model"]
    args = factory.model_arguments(model)
    if isinstance(model.get("init_args", {}).get("pretrained"), str):
        weights = factory.folder / f"{args['clip_model']}-weights.pt"
        if not weights.exists():
            torch.save(open_clip.create_model(args["clip_model"]).state_dict(), weights)
        args["pretrained"] = str(weights)
    return class_of(model["class_path"])(**args)


def evaluation_batch(module, img_size: int, index_start: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(EVALUATION_IMAGES, 3, img_size, img_size, generator=generator)
    index = torch.arange(index_start, index_start + EVALUATION_IMAGES)
    if hasattr(explained_of(module), "tokenize"):
        grid = module.grid_size
        captions = 5
        tokens = explained_of(module).tokenize(
            [f"a photo of object {i}" for i in range(EVALUATION_IMAGES * captions)]
        )
        regions = torch.zeros(EVALUATION_IMAGES, captions, grid[0] * grid[1], dtype=torch.bool)
        regions[..., : grid[1]] = True
        return {
            "image": images,
            "image_index": index,
            "text": tokens.view(EVALUATION_IMAGES, captions, -1),
            "caption_index": index.unsqueeze(1) * captions + torch.arange(captions),
            "caption_patches": regions,
        }
    mask = torch.zeros(EVALUATION_IMAGES, img_size, img_size)
    mask[:, : img_size // 2] = 1
    labels = torch.arange(EVALUATION_IMAGES) % 2
    return {"image": images, "label": labels, "index": index, "mask": mask}


def test_step_flops(module, batch) -> tuple[float, float]:
    """(vision, text) FLOPs of one test step, the text tower's apart. The epoch's end (tables,
    bootstrap intervals, retrieval's similarity matrix) is not counted: it is not run."""
    towers = getattr(explained_of(module), "towers", None)
    tally = FlopTally(split=towers.clip.transformer if towers is not None else None)
    test_step = module.test_step

    def counted_test_step(*args, **kwargs):
        with tally, sdpa_kernel(SDPBackend.MATH):
            return test_step(*args, **kwargs)

    module.test_step = counted_test_step
    module.on_test_epoch_end = lambda: None
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        callbacks=[],
    )
    trainer.test(module, datamodule=SyntheticData(batch), verbose=False)
    return tally.total - tally.split_flops, tally.split_flops


def explained_of(module):
    """What an evaluation module explains (``explained``), or the classifier a comparison scores."""
    return module.explained if hasattr(module, "explained") else module.models["classifier"]


def forward_units(module) -> tuple[float, float]:
    """FLOPs of one forward of what an evaluation explains (one image), and of one caption's text encoding."""
    explained = explained_of(module)
    img_size = int(explained.hparams.get("img_size", 224))
    image = torch.zeros(1, 3, img_size, img_size)
    if hasattr(explained, "tokenize"):
        vision = count_flops(lambda: explained.image_features(image))
        tokens = explained.tokenize(["a photo of object number 1 on the left"])
        return vision, count_flops(lambda: explained.text_features(tokens))
    forward = module.model.logits if hasattr(module, "model") else explained
    return count_flops(lambda: forward(image)), 0.0


def table_rows(factory, real_factory, scale, tables: dict, log) -> list[dict]:
    """Rows of the tables ``{name: entry of experiments/tables/tables.yaml}``."""
    rows = []
    for name, table in tables.items():
        trainer_config = read_yaml(EXPERIMENTS.parent / table["trainer"])
        precision = (
            "fp32"
            if "32" in str(trainer_config.get("trainer", {}).get("precision", "32"))
            else "bf16"
        )
        total, known = 0.0, True
        for run, configs in table["runs"].items():
            configs = [configs] if isinstance(configs, str) else configs
            config = merged_configs([table["trainer"], *configs])
            started = time.perf_counter()
            proxy = evaluation_module(factory, config)
            img_size = int(explained_of(proxy).hparams.get("img_size", 224))
            first = test_step_flops(proxy, evaluation_batch(proxy, img_size, 0))
            later = (
                test_step_flops(
                    evaluation_module(factory, config),
                    evaluation_batch(proxy, img_size, UNLIMITED_INDEX),
                )
                if first_images_limit(config)
                else first
            )
            proxy_units = forward_units(proxy)
            real_units = forward_units(evaluation_module(real_factory, config))
            data = scale["datasets"][dataset_key(config)]
            images = test_images(config, data)

            def flops(step, proxy_units=proxy_units, real_units=real_units):
                """Real FLOPs per image of a counted proxy step: its forwards of each tower, rescaled."""
                vision, text = step
                per_image = vision / EVALUATION_IMAGES / proxy_units[0] * real_units[0]
                if text:
                    per_image += text / EVALUATION_IMAGES / proxy_units[1] * real_units[1]
                return per_image

            limited = flops(first) - flops(later)  # metrics of the first K images only
            if images is None:
                run_flops, known = None, False
            else:
                run_flops = flops(later) * images + limited * min(
                    images, first_images_limit(config)
                )
                total += run_flops
            log(
                f"  {name} / {run}: {flops(later) / 1e9:.1f} GFLOP / image "
                f"({time.perf_counter() - started:.0f} s)"
            )
            petaflops, hours = amount(run_flops, scale, precision)
            rows.append(
                {
                    "table": name,
                    "run": run,
                    "forward-equivalents / image": f"{flops(later) / real_units[0]:,.1f}",
                    "GFLOP / image": f"{flops(later) / 1e9:,.1f}",
                    "first-K GFLOP": f"{limited / 1e9:,.1f}" if limited > 0 else "-",
                    "images": f"{images:,}" if images is not None else "?",
                    "PFLOP": petaflops,
                    "H100-hours": hours,
                    "data": data["name"],
                    "SLURM": f"`sbatch experiments/slurm/table-{name}.sbatch`"
                    if (SLURM / f"table-{name}.sbatch").exists()
                    else f"`python -m shapvision_drivers.tables {name}`",
                }
            )
        petaflops, hours = amount(total if known else None, scale, precision)
        rows.append({"table": name, "run": "**all runs**", "PFLOP": petaflops, "H100-hours": hours})
    return rows


def first_images_limit(config: dict) -> int:
    """The largest "first K images" limit of the run's metrics (0: none has one)."""
    args = config["model"].get("init_args", {})
    limits = []
    for metric in args.get("metrics", []):
        if metric not in METRICS:  # "retrieval": image-text evaluation's own recall, every image
            continue
        parameters = inspect.signature(METRICS[metric].__init__).parameters
        if "images" in parameters:
            options = (args.get("metric_options") or {}).get(metric, {})
            limits.append(int(options.get("images", parameters["images"].default)))
    return max(limits, default=0)


def linked_data_options(config: dict, datasets: dict) -> dict:
    """What the CLI takes from the data module into the model: its image size and number of classes."""
    data = config.get("data", {})
    if "class_path" not in data:
        return {}
    parameters = inspect.signature(class_of(data["class_path"]).__init__).parameters
    linked = {}
    img_size = data.get("init_args", {}).get(
        "img_size", parameters.get("img_size") and parameters["img_size"].default
    )
    if isinstance(img_size, int):
        linked["img_size"] = img_size
    classes = datasets.get(dataset_key(config), {}).get("classes")
    if classes:
        linked["num_classes"] = classes
    return linked


def dataset_key(config: dict) -> str:
    """The folder under ${SHAPVISION_DATA} the run reads, or its data module's class name."""
    data = config.get("data", {})
    for value in data.get("init_args", {}).values():
        if isinstance(value, str) and "${SHAPVISION_DATA}/" in value:
            return value.split("${SHAPVISION_DATA}/", 1)[1].split("/")[0]
    return data.get("class_path", "").rpartition(".")[2]


def test_images(config: dict, data: dict) -> int | None:
    """The test images a run scores: the data set's, or fewer under ``trainer.limit_test_batches``."""
    if data.get("test") is None:
        return None
    limit = config.get("trainer", {}).get("limit_test_batches")
    batch = config.get("data", {}).get("init_args", {}).get("eval_batch_size")
    if isinstance(limit, int) and batch:
        return min(data["test"], limit * batch)
    return data["test"]


def amount(flops: float | None, scale: dict, precision: str) -> tuple[str, str]:
    """(PFLOP, GPU-hours) cells; "-" where the data set's size is not known."""
    if flops is None:
        return "-", "-"
    return f"{flops / 1e15:,.2f}", gpu_hours(flops, scale, precision)


class CostContext:
    """What the parts costed in one process share: a temporary folder, the proxy CLIP's registration
    and the two module factories, so a checkpoint that several tables name is built once per process."""

    def __init__(self):
        self.scale = read_yaml(SCALE_FILE)
        self.folder = tempfile.TemporaryDirectory()  # removed when the process ends, at the latest
        root = Path(self.folder.name)
        register_proxy_clip(root)
        datasets = self.scale["datasets"]
        self.real = ModuleFactory(root / "real", proxy=False, datasets=datasets)
        self.proxy = ModuleFactory(root / "proxy", proxy=True, datasets=datasets)
        self.real.folder.mkdir(), self.proxy.folder.mkdir()


_process_context: CostContext | None = None


def start_process(threads: int) -> None:
    """The set-up of a process that costs parts (``--jobs`` workers, or the one process of ``--jobs 1``)."""
    global _process_context
    torch.set_num_threads(threads)
    _process_context = CostContext()


def cost_part(part: tuple[str, str], folders: list[str] | None) -> list[dict]:
    """One unit of the cost model, in the process's ``CostContext``: ``("training", "")`` the
    training runs, ``("table", name)`` one seeds' table."""
    context = _process_context

    def log(message):
        print(message, flush=True)

    kind, name = part
    if kind == "training":
        return training_rows(context.real, context.scale, set(folders) if folders else None, log)
    table = read_yaml(TABLES_FILE)[name]
    return table_rows(context.proxy, context.real, context.scale, {name: table}, log)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="docs/scale.md")
    parser.add_argument(
        "--folders", nargs="*", help="only the training runs of these experiment folders"
    )
    parser.add_argument(
        "--tables", nargs="*", help="only these tables (default: every table-* template)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes that cost the training runs and the tables side by side (CPU threads split among them)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    names = (
        args.tables
        if args.tables is not None
        else [n.removeprefix("table-") for n in templates("table")]
    )
    unknown = sorted(set(names) - set(read_yaml(TABLES_FILE)))
    if unknown:
        parser.error(f"--tables: no such table in {TABLES_FILE}: {', '.join(unknown)}")
    parts = [("training", "")] + [("table", name) for name in names]
    threads = max(1, torch.get_num_threads() // args.jobs)
    started = time.perf_counter()
    cost = functools.partial(cost_part, folders=args.folders)
    if args.jobs == 1:
        start_process(threads)
        results = [cost(part) for part in parts]
        _process_context.folder.cleanup()
    else:
        with ProcessPoolExecutor(
            args.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_process,
            initargs=(threads,),
        ) as pool:
            results = list(pool.map(cost, parts))
    seconds = time.perf_counter() - started
    write(
        Path(args.out),
        read_yaml(SCALE_FILE),
        results[0],
        sum(results[1:], []),
        seconds,
        args.jobs * threads,
    )
    print(f"written: {args.out}")


def write(
    path: Path, scale: dict, training: list[dict], tables: list[dict], seconds: float, threads: int
) -> None:
    device = scale["device"]
    lines = [
        "# What each run costs: FLOPs and GPU-hours",
        "",
        "Generated by `python -m shapvision_drivers.scale` (the method: its docstring) from experiments/scale.yaml",
        f"and the configs; {seconds:.0f} s on {threads} CPU threads, torch {torch.__version__}.",
        f"GPU-hours on one {device['name']} ({device['peak_tflops']['bf16']:.0f} dense bf16 TFLOP/s,",
        f"{device['peak_tflops']['fp32']:.0f} TF32) at an assumed {100 * scale['mfu']:.0f} % MFU: estimates, not",
        "measurements (see BENCHMARKS.md for measured steps). Divide by the GPUs of the SLURM template for wall time.",
        "",
        "## Training runs",
        "",
        "Per image: one training step's forward and backward at the real size, counted.",
        "",
        markdown_table(training),
        "",
        "## Seeds' tables",
        "",
        "Per image: every method and metric of the run, counted on a proxy and expressed in forwards of",
        "the explained model (forward-equivalents / image: a masked forward counts as the share of a",
        "full forward it costs), times its real forward; first-K: the extra FLOPs of an image that",
        "metrics limited to the first K test images score (exact or converged Shapley references).",
        "A table's precision is its trainer config's (the seeds' tables: float32, on TF32).",
        "",
        markdown_table(tables),
        "",
        "## Data",
        "",
        markdown_table(
            [
                {
                    "dataset": d["name"],
                    "train": f"{d['train']:,}" if d.get("train") else "-",
                    "test": f"{d['test']:,}" if d.get("test") else "-",
                    "where": d["where"],
                }
                for d in scale["datasets"].values()
            ]
        ),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
