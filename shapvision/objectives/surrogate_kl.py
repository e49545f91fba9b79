"""Surrogate distillation loss: KL(classifier(x) || surrogate(x, S)), batch-mean (ViT-Shapley)."""

import torch
import torch.nn.functional as F


def surrogate_kl_loss(surrogate_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(softmax(teacher) || softmax(surrogate)); logits ``(B, K)``."""
    return per_sample_kl(surrogate_logits, teacher_logits).mean()


def per_sample_kl(surrogate_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(surrogate)) for each row, ``(B,)``."""
    teacher_log = F.log_softmax(teacher_logits, dim=-1)
    return (teacher_log.exp() * (teacher_log - F.log_softmax(surrogate_logits, dim=-1))).sum(-1)
