"""Zero-shot image-text retrieval R@K in both directions, the Karpathy-split protocol.

Protocol (BLIP ``train_retrieval.py::itm_eval``, CLIP_benchmark ``zeroshot_retrieval.py``): every image
is scored against every caption of the split. Text -> image: the rank of the caption's own image.
Image -> text: the best rank among the image's captions (an image has several). R@K = fraction of
queries whose rank is < K, ties broken at random and counted in expectation (our choice, see
:func:`retrieval_recalls`): an uninformative model scores chance.
open_clip's ``get_clip_metrics`` pairs images and captions 1:1 and is not this protocol.

Embeddings are gathered from every rank (``dist_reduce_fx="cat"``) together with their dataset
indices; the copies a DistributedSampler pads the last batch with are dropped by index, so the DDP
result equals the single-process one.
"""

import torch
from torchmetrics import Metric

from shapvision.metrics.per_image import first_occurrence


def log_binomial(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def retrieval_recalls(
    similarity: torch.Tensor, caption_image: torch.Tensor, ks: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """Per query, the probability that it retrieves its own within the top K, ties broken at random:
    ``t2i_r{K}`` ``(T,)`` and ``i2t_r{K}`` ``(I,)`` from a similarity ``(I, T)``.

    ``caption_image[t]`` is the row (image) of caption t; every image needs at least one caption.
    Text -> image: with g images strictly above the caption's own and e others tied with it, the
    own image's place is uniform over g .. g + e, so P(rank < K) = clamp(K - g, 0, e + 1) / (e + 1).
    Image -> text: with g captions strictly above the image's best own caption, and o own and e other
    captions tied at that score, the first own caption comes after j of the tied others with
    P(j >= m) = C(e, m) / C(e + o, m). Counting ties for the query, as we did, scored R@1 = 1 on an
    all-identical input (the 0 % point of retrieval insertion); this gives chance.
    """
    similarity = similarity.double()
    num_images, num_texts = similarity.shape
    columns = torch.arange(num_texts, device=similarity.device)
    own_score = similarity[caption_image, columns]
    above = (similarity > own_score).sum(0).double()
    tied = (similarity == own_score).sum(0).double() - 1
    own = torch.zeros_like(similarity, dtype=torch.bool)
    own[caption_image, columns] = True
    if not bool(own.any(1).all()):
        raise ValueError("every image needs at least one caption for image -> text retrieval")
    best = similarity.masked_fill(~own, float("-inf")).max(1, keepdim=True).values
    image_above = (similarity > best).sum(1).double()
    at_best = similarity == best
    own_tied, other_tied = (at_best & own).sum(1).double(), (at_best & ~own).sum(1).double()
    out = {}
    for k in ks:
        out[f"t2i_r{k}"] = torch.minimum((k - above).clamp(0), tied + 1) / (tied + 1)
        m = k - image_above
        later = torch.exp(
            log_binomial(other_tied, m.clamp(0, None).minimum(other_tied))
            - log_binomial(other_tied + own_tied, m.clamp(0, None).minimum(other_tied))
        )
        later = torch.where(m > other_tied, torch.zeros_like(later), later)
        out[f"i2t_r{k}"] = torch.where(m <= 0, torch.zeros_like(later), 1 - later)
    return out


class ImageTextRetrieval(Metric):
    """``update(image_features, image_index, text_features, text_index, text_image_index)``;
    ``compute()`` -> ``{"t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", ...}``.

    Similarity = ``image_features @ text_features.T``: unit CLIP embeddings, or SVO-CLIP's mean of
    unit patch embeddings, whose dot product with a text embedding is its summed patch votes.
    """

    full_state_update = False

    def __init__(self, ks: tuple[int, ...] = (1, 5, 10), **kwargs):
        super().__init__(**kwargs)
        self.ks = tuple(ks)
        for name in ("images", "image_index", "texts", "text_index", "text_image_index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, image_features, image_index, text_features, text_index, text_image_index):
        self.images.append(image_features.float())
        self.image_index.append(image_index.long())
        self.texts.append(text_features.float())
        self.text_index.append(text_index.long())
        self.text_image_index.append(text_image_index.long())

    def compute(self) -> dict[str, torch.Tensor]:
        def cat(state):
            return torch.cat(state) if isinstance(state, list) else state

        images, image_index = cat(self.images), cat(self.image_index)
        texts, text_index, text_image = (
            cat(self.texts),
            cat(self.text_index),
            cat(self.text_image_index),
        )
        keep_images, keep_texts = first_occurrence(image_index), first_occurrence(text_index)
        images, image_index = images[keep_images], image_index[keep_images]
        texts, text_image = texts[keep_texts], text_image[keep_texts]
        row_of = {int(i): row for row, i in enumerate(image_index.tolist())}
        missing = sorted(set(text_image.tolist()) - set(row_of))
        if missing:
            raise ValueError(f"captions refer to images that were not evaluated: {missing[:5]}")
        caption_image = torch.tensor(
            [row_of[int(i)] for i in text_image.tolist()], device=texts.device
        )
        recalls = retrieval_recalls(images @ texts.T, caption_image, self.ks)
        return {name: value.mean().float() for name, value in recalls.items()}
