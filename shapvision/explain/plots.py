"""Figures a researcher looks at: heatmap grids and insertion / deletion curves.

Figures are built on ``matplotlib.figure.Figure`` directly, not pyplot, so importing the package never
touches the user's matplotlib backend and nothing needs closing.
"""

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure


def subplots(rows: int, cols: int, figsize):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _display(image: torch.Tensor) -> torch.Tensor:
    image = image.float()
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-8)
    return image.permute(1, 2, 0)


def upsample(values: torch.Tensor, grid_size, size) -> torch.Tensor:
    """Per-patch values ``(N,)`` -> a ``size`` map, nearest-neighbour so patch borders stay visible."""
    grid = values.float().view(1, 1, *grid_size)
    return F.interpolate(grid, size=size, mode="nearest")[0, 0]


def heatmap_grid_figure(examples, grid_size, label: str = "explainer"):
    """One row per example: image, the ``label`` heatmap, exact heatmap (shared symmetric colour scale per row)."""
    fig, axes = subplots(len(examples), 3, (6.6, 2.2 * len(examples)))
    for row, (image, estimate, exact, target) in enumerate(examples):
        size = image.shape[-2:]
        scale = float(max(estimate.abs().max(), exact.abs().max(), 1e-8))
        axes[row, 0].imshow(_display(image))
        axes[row, 0].set_title(f"class {target}", fontsize=8)
        for col, (values, title) in enumerate(
            ((estimate, label), (exact, "exact Shapley")), start=1
        ):
            axes[row, col].imshow(_display(image), alpha=0.35)
            axes[row, col].imshow(
                upsample(values, grid_size, size), cmap="bwr", vmin=-scale, vmax=scale, alpha=0.75
            )
            axes[row, col].set_title(title, fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def overlay_figure(image: torch.Tensor, values: torch.Tensor, grid_size, title: str = ""):
    fig, axes = subplots(1, 1, (3, 3))
    ax = axes[0, 0]
    scale = float(values.abs().max().clamp_min(1e-8))
    ax.imshow(_display(image), alpha=0.4)
    ax.imshow(
        upsample(values, grid_size, image.shape[-2:]),
        cmap="bwr",
        vmin=-scale,
        vmax=scale,
        alpha=0.7,
    )
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return fig


def curves_figure(curves: dict):
    """Mean insertion and deletion curves per scorer, AUC in the legend."""
    fig, axes = subplots(1, len(curves), (4.2 * len(curves), 3.2))
    for ax, (scorer, result) in zip(axes[0], curves.items(), strict=True):
        for kind, colour in (("insertion", "tab:green"), ("deletion", "tab:red")):
            curve = result[f"{kind}_curve"].cpu()
            fraction = torch.linspace(0, 1, curve.numel())
            ax.plot(
                fraction,
                curve,
                color=colour,
                label=f"{kind} (AUC {float(result[f'{kind}_auc']):.3f})",
            )
        ax.set_xlabel("fraction of patches inserted / deleted")
        ax.set_ylabel("probability of explained class")
        ax.set_title(f"scored with the {scorer}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def method_grid_figure(examples: list[dict], class_names: list[str] | None = None):
    """One row per image, one column per method: each map min-max scaled on its own (methods differ in units)."""
    methods = list(examples[0]["maps"])
    fig, axes = subplots(
        len(examples), len(methods) + 1, (1.6 * (len(methods) + 1), 1.7 * len(examples))
    )
    for row, example in enumerate(examples):
        image = _display(example["image"])
        target = example["target"]
        name = class_names[target] if class_names else str(target)
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"#{example['index']}: {name}", fontsize=7)
        for col, method in enumerate(methods, start=1):
            values = example["maps"][method].float()
            scaled = (values - values.min()) / (values.max() - values.min()).clamp_min(1e-12)
            axes[row, col].imshow(image, alpha=0.35)
            axes[row, col].imshow(scaled, cmap="jet", vmin=0, vmax=1, alpha=0.65)
            if row == 0:
                axes[row, col].set_title(method, fontsize=7)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    return fig
