"""Surrogate distillation loss: KL(classifier(x) || surrogate(x, S)), batch-mean (ViT-Shapley)."""

import torch
import torch.nn.functional as F


def surrogate_kl_loss(surrogate_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(softmax(teacher) || softmax(surrogate)); logits ``(B, K)``."""
    return per_sample_kl(surrogate_logits, teacher_logits).mean()


def per_sample_kl(surrogate_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(surrogate)) for each row, ``(B,)``, in float32 whatever the
    logits' dtype: under bf16 autocast a softmax near 0 / 1 and the sum over classes lose the KL."""
    teacher_log = F.log_softmax(teacher_logits.float(), dim=-1)
    surrogate_log = F.log_softmax(surrogate_logits.float(), dim=-1)
    return (teacher_log.exp() * (teacher_log - surrogate_log)).sum(-1)
