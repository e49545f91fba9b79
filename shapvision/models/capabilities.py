"""What a trained module can do, as small protocols: the evaluation layer, the explanation methods and
``shapvision explain`` ask a module for a capability instead of comparing its class name, so a new
self-explaining model or image-text model works everywhere by implementing the protocol.

``isinstance`` / ``issubclass`` check the methods' presence (``typing.runtime_checkable``).
"""

from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn


@runtime_checkable
class ImageTextModel(Protocol):
    """A CLIP-style model: unit image and caption embeddings and the score of an image-caption pair.

    ``caption_scores(images, text, keep)`` ``(B, T)`` is the score of each image with each caption of
    unit embeddings ``text`` ``(T, D)`` (removed patches dropped where ``keep`` says so): the game its
    explanations are Shapley values of, in the model's own units (SVO-CLIP: the sum of its patch
    votes; CLIP: the cosine).
    """

    def image_features(self, images: torch.Tensor, keep: torch.Tensor | None = None): ...

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def caption_scores(
        self, images: torch.Tensor, text: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor: ...

    def tokenize(self, captions: list[str]) -> torch.Tensor: ...


@runtime_checkable
class SelfExplaining(Protocol):
    """A model whose own outputs are per-patch Shapley values (SVO-ViT, SVO-ResNet, SVO-CLIP).

    ``own_values(images, text=None)`` ``(B, N, K)``: each patch's value for each of the model's K
    classes (its logits are their sum), or, for an image-text model, for each of the K captions of
    unit embeddings ``text`` (their sum is ``caption_scores``). The link of its game is the identity.
    """

    def own_values(
        self, images: torch.Tensor, text: torch.Tensor | None = None
    ) -> torch.Tensor: ...


@runtime_checkable
class ExplainsAGame(Protocol):
    """An amortized explainer (ViT-Shapley): ``explain(images)`` ``(B, N, K)`` are Shapley values of
    another model's game, ``explained_game()`` = (that model, the name of its link)."""

    def explain(self, images: torch.Tensor) -> torch.Tensor: ...

    def explained_game(self) -> tuple[nn.Module, str]: ...
