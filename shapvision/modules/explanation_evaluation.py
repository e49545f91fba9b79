"""Test-time evaluation of a module's own explanations: Shapley accuracy against exact values, insertion / deletion.

Shared by the ViT-Shapley :class:`Explainer` (explaining a frozen surrogate) and the self-explaining
:class:`SVOClassifier` (explaining its own value function). The module provides:
- ``evaluation_outputs(images)`` -> (Phi ``(B, N, K)``, explained class ``(B,)``);
- ``reference_game(image)`` -> the value function ``bool (M, N) -> (M, K)`` whose Shapley values Phi estimates;
- ``dropped_patch_logits(images, keep)`` and ``pixel_logits(images)`` (a full forward, for the pixel
  baselines), with ``scoring_link`` turning logits into the scored quantity;
- ``patch_size``, ``explanation_name`` and ``scorer_names`` = (dropped-patch scorer, pixel scorer).

- Shapley accuracy: for the test images whose dataset index is below ``exact_images``, the game's
  exact Shapley values (all 2^N coalitions; N <= 24) are the reference; the module's values and
  paired KernelSHAP at each budget in ``kernel_shap_budgets`` are scored against them.
  The index is the batch's ``index`` (position in the test split), so DDP selects the same images
  as one process and a dropped unreadable image shifts nothing.
- Insertion / deletion for every test image (or those whose index is below ``faithfulness_images``:
  2 (N + 1) forwards per image and scorer) and the explained class, scored two ways: with removed
  patches dropped, and on pixels (deletion to the 0 baseline, insertion onto an 11 x 11, sigma 5
  Gaussian blur of the image).
Results go to the logger (``test/...``), to ``shapley_metrics.csv`` and ``curves.csv``, and a heatmap
grid PNG, in the run directory.
"""

import csv
import time
from pathlib import Path

import torch
from torchvision.transforms.functional import gaussian_blur

from shapvision.explain.plots import curves_figure, heatmap_grid_figure
from shapvision.metrics.insertion_deletion import InsertionDeletion, insertion_deletion_curves
from shapvision.metrics.shapley_accuracy import ShapleyAccuracy
from shapvision.models.masked_backbone import pixel_mask
from shapvision.modules.surrogate_game import LINKS
from shapvision.shapley.exact import MAX_EXACT_PLAYERS, exact_shapley
from shapvision.shapley.kernel_shap import kernel_shap

HEATMAP_EXAMPLES = 8


class ExplanationEvaluation:
    explanation_name = "explainer"
    scorer_names = ("surrogate", "classifier")

    def setup_evaluation(self) -> None:
        self.shapley_metrics = torch.nn.ModuleDict({self.explanation_name: ShapleyAccuracy()})
        for budget in self.hparams.kernel_shap_budgets:
            self.shapley_metrics[f"kernelshap_{budget}"] = ShapleyAccuracy()
        self.faithfulness = torch.nn.ModuleDict(
            {name: InsertionDeletion(self.num_patches) for name in self.scorer_names}
        )
        self.register_buffer(
            "explain_seconds", torch.zeros(2, dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "kernelshap_seconds",
            torch.zeros(len(self.hparams.kernel_shap_budgets), dtype=torch.float64),
            persistent=False,
        )
        self.register_buffer("timed_images", torch.zeros((), dtype=torch.float64), persistent=False)
        self._examples = []

    def on_test_start(self) -> None:
        if self.hparams.exact_images and self.num_patches > MAX_EXACT_PLAYERS:
            raise ValueError(
                f"exact Shapley values need N <= {MAX_EXACT_PLAYERS} patches, this model has {self.num_patches}; "
                "set model.init_args.exact_images=0 (insertion/deletion are still computed)"
            )
        self._examples = []

    def evaluate_explanations(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Score one test batch's explanations; returns them (Phi ``(B, N, K)``) for the caller's own metrics."""
        start = time.perf_counter()
        phi, target = self.evaluation_outputs(images)
        self.explain_seconds[0] += time.perf_counter() - start
        self.explain_seconds[1] += images.shape[0]
        limit = self.hparams.faithfulness_images
        scored = index < limit if limit is not None else torch.ones_like(index, dtype=torch.bool)
        if scored.any():
            self._faithfulness(images[scored], phi[scored], target[scored])
        for i in (index < self.hparams.exact_images).nonzero().flatten().tolist():
            self._shapley_accuracy(images[i], phi[i], target[i])
        return phi

    def _target_scores(self, target):
        return lambda logits: (
            LINKS[self.scoring_link](logits).gather(1, target.view(-1, 1)).squeeze(1)
        )

    def _faithfulness(self, images, phi, target):
        attribution = phi.gather(2, target.view(-1, 1, 1).expand(-1, self.num_patches, 1)).squeeze(
            2
        )
        score = self._target_scores(target)
        baselines = {
            "insertion": gaussian_blur(images, kernel_size=[11, 11], sigma=[5.0, 5.0]),
            "deletion": torch.zeros_like(images),
        }
        dropped, on_pixels = self.scorer_names
        self.faithfulness[dropped].update(
            *insertion_deletion_curves(
                lambda keep, mode: score(self.dropped_patch_logits(images, keep)), attribution
            )
        )

        def pixel_score(keep, mode):
            pixels = pixel_mask(keep, self.grid_size, self.patch_size).to(images.dtype)
            return score(self.pixel_logits(images * pixels + baselines[mode] * (1 - pixels)))

        self.faithfulness[on_pixels].update(*insertion_deletion_curves(pixel_score, attribution))

    def _shapley_accuracy(self, image, phi, target):
        game = self.reference_game(image)
        exact = exact_shapley(
            game, self.num_patches, batch_size=self.hparams.value_batch_size, device=image.device
        ).to(phi.dtype)
        self.shapley_metrics[self.explanation_name].update(
            phi.unsqueeze(0), exact.unsqueeze(0), target.view(1)
        )
        for j, budget in enumerate(self.hparams.kernel_shap_budgets):
            generator = torch.Generator(device=image.device).manual_seed(int(budget))
            start = time.perf_counter()
            estimate = kernel_shap(
                game,
                self.num_patches,
                threshold=None,
                max_evals=int(budget),
                batch_size=64,
                generator=generator,
                device=image.device,
            )
            self.kernelshap_seconds[j] += time.perf_counter() - start
            self.shapley_metrics[f"kernelshap_{budget}"].update(
                estimate.values.to(phi.dtype).unsqueeze(0), exact.unsqueeze(0), target.view(1)
            )
        self.timed_images += 1
        if len(self._examples) < HEATMAP_EXAMPLES:
            self._examples.append(
                (image.cpu(), phi[:, target].cpu(), exact[:, target].cpu(), int(target))
            )

    def on_test_epoch_end(self) -> None:
        rows = []
        timing_explainer = self.explain_seconds[0] / self.explain_seconds[1].clamp_min(1)
        timed = self.timed_images.clamp_min(1)
        seconds_per_image = {self.explanation_name: timing_explainer}
        for j, budget in enumerate(self.hparams.kernel_shap_budgets):
            seconds_per_image[f"kernelshap_{budget}"] = self.kernelshap_seconds[j] / timed
        for name, metric in self.shapley_metrics.items():
            if int(metric.count) == 0 and self.trainer.world_size == 1:
                continue
            values = metric.compute()
            seconds = seconds_per_image[name]
            row = {
                "method": name,
                **{k: float(v) for k, v in values.items()},
                "seconds_per_image": float(seconds),
            }
            rows.append(row)
            for key, value in values.items():
                self.log(f"test/{name}/{key}", value)
            metric.reset()
        curves = {}
        for scorer, metric in self.faithfulness.items():
            result = metric.compute()
            self.log(f"test/insertion_auc_{scorer}", result["insertion_auc"])
            self.log(f"test/deletion_auc_{scorer}", result["deletion_auc"])
            curves[scorer] = result
            metric.reset()
        run_dir = self.run_dir()
        if self.trainer.is_global_zero:
            self._write_outputs(run_dir, rows, curves)

    def _write_outputs(self, run_dir: Path, rows, curves) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if rows:
            with open(run_dir / "shapley_metrics.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        with open(run_dir / "curves.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["scorer", "curve", "auc", *range(self.num_patches + 1)])
            for scorer, result in curves.items():
                for kind in ("insertion", "deletion"):
                    writer.writerow(
                        [
                            scorer,
                            kind,
                            float(result[f"{kind}_auc"]),
                            *[f"{v:.6f}" for v in result[f"{kind}_curve"].tolist()],
                        ]
                    )
        figures = {"curves": curves_figure(curves)}
        if self._examples:
            figures["heatmaps"] = heatmap_grid_figure(
                self._examples, self.grid_size, self.explanation_name
            )
        experiment = getattr(self.logger, "experiment", None)
        for name, figure in figures.items():
            figure.savefig(run_dir / f"{name}.png", dpi=120, bbox_inches="tight")
            if hasattr(experiment, "add_figure"):
                experiment.add_figure(f"test/{name}", figure, global_step=self.global_step)
