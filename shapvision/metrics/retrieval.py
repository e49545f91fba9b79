"""Zero-shot image-text retrieval R@K in both directions, the Karpathy-split protocol.

Protocol (BLIP ``train_retrieval.py::itm_eval``, CLIP_benchmark ``zeroshot_retrieval.py``): every image
is scored against every caption of the split. Text -> image: the rank of the caption's own image.
Image -> text: the best rank among the image's captions (an image has several). R@K = fraction of
queries whose rank is < K. Ranks count the strictly better candidates, so a tie goes to the query.
open_clip's ``get_clip_metrics`` pairs images and captions 1:1 and is not this protocol.

Embeddings are gathered from every rank (``dist_reduce_fx="cat"``) together with their dataset
indices; the copies a DistributedSampler pads the last batch with are dropped by index, so the DDP
result equals the single-process one.
"""

import torch
from torchmetrics import Metric


def first_occurrence(index: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of every distinct value of ``index``, in increasing value order."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[first]


def retrieval_ranks(
    similarity: torch.Tensor, caption_image: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks ``(T,)`` text -> image and ``(I,)`` image -> text from a similarity ``(I, T)``.

    ``caption_image[t]`` is the row (image) of caption t. Every image needs at least one caption.
    """
    num_images = similarity.shape[0]
    columns = torch.arange(similarity.shape[1], device=similarity.device)
    own = similarity[caption_image, columns]
    text_to_image = (similarity > own.unsqueeze(0)).sum(0)
    per_caption = (similarity[caption_image] > own.unsqueeze(1)).sum(1)
    image_to_text = torch.full(
        (num_images,), similarity.shape[1], dtype=per_caption.dtype, device=similarity.device
    )
    image_to_text = image_to_text.scatter_reduce(0, caption_image, per_caption, reduce="amin")
    if bool((image_to_text == similarity.shape[1]).any()):
        raise ValueError("every image needs at least one caption for image -> text retrieval")
    return text_to_image, image_to_text


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
        t2i, i2t = retrieval_ranks(images @ texts.T, caption_image)
        result = {}
        for k in self.ks:
            result[f"t2i_r{k}"] = (t2i < k).float().mean()
            result[f"i2t_r{k}"] = (i2t < k).float().mean()
        return result
