"""The link from a model's outputs to the values of the game its explanations are Shapley values of.

One object per link, read by everything that evaluates the game: the surrogate game an explainer is
trained on, the objectives that refuse a link, and the evaluation (metrics, perturbation baselines,
exact references), so an explainer trained on a sigmoid game is scored on that game.

- ``softmax``: class probabilities (ViT-Shapley's game, multi-class);
- ``sigmoid``: independent per-class probabilities (multi-label or one-logit binary tasks);
- ``identity``: the logits themselves (SVO's votes are Shapley values of the logit game; image-text
  similarities).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Link:
    name: str
    function: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Values ``(..., K)`` of logits ``(..., K)``."""
        return self.function(logits)


SOFTMAX = Link("softmax", lambda logits: logits.softmax(-1))
SIGMOID = Link("sigmoid", torch.sigmoid)
IDENTITY = Link("identity", lambda logits: logits)
LINKS = {link.name: link for link in (SOFTMAX, SIGMOID, IDENTITY)}


def get_link(link: "str | Link") -> Link:
    """The link of that name (a Link is returned as it is); a clear error for an unknown name."""
    if isinstance(link, Link):
        return link
    if link not in LINKS:
        raise ValueError(f"link must be one of {sorted(LINKS)}, got {link!r}")
    return LINKS[link]
