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


def overlay_figure(image: torch.Tensor, values: torch.Tensor, grid_size, title: str = ""):
    fig, axes = subplots(1, 1, (3, 3))
    ax = axes[0, 0]
    scale = float(values.abs().max().clamp_min(1e-8))
    ax.imshow(_display(image))
    ax.imshow(
        upsample(values, grid_size, image.shape[-2:]),
        cmap="bwr",
        vmin=-scale,
        vmax=scale,
        alpha=0.55,
    )
    ax.set_title(title, fontsize=8)
    ax.axis("off")
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
        name = example.get("title") or (class_names[target] if class_names else str(target))
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
