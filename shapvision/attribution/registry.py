"""Explanation methods by name: adding one is one new file and one line here."""

from shapvision.attribution.attcat import AttCAT
from shapvision.attribution.attention_methods import (
    AttentionLast,
    AttentionRollout,
    GradientWeightedAttention,
)
from shapvision.attribution.base import AttributionMethod
from shapvision.attribution.cams import EigenCAMAttribution, GradCAMAttribution
from shapvision.attribution.caption_model import SVOCLIPVotes
from shapvision.attribution.chefer_lrp import CheferLRP
from shapvision.attribution.clip_surgery import CLIPSurgery
from shapvision.attribution.explained_model import ExplainedModel
from shapvision.attribution.grad_eclip import GradECLIP
from shapvision.attribution.gradients import (
    IntegratedGradientsAttribution,
    SaliencyAttribution,
    SmoothGradAttribution,
)
from shapvision.attribution.idgi import IDGIAttribution
from shapvision.attribution.learned import SVOValues
from shapvision.attribution.lrp import LRPAttribution
from shapvision.attribution.m2ib import M2IB
from shapvision.attribution.maskclip import MaskCLIP
from shapvision.attribution.perturbation import KernelSHAPBudget, LeaveOneOut
from shapvision.attribution.random_baseline import RandomAttribution
from shapvision.attribution.rise import RISEAttribution

METHODS: dict[str, type[AttributionMethod]] = {
    cls.name: cls
    for cls in (
        RandomAttribution,
        SVOValues,
        SVOCLIPVotes,
        AttentionLast,
        AttentionRollout,
        GradientWeightedAttention,
        AttCAT,
        CheferLRP,
        GradCAMAttribution,
        EigenCAMAttribution,
        SaliencyAttribution,
        IntegratedGradientsAttribution,
        SmoothGradAttribution,
        IDGIAttribution,
        LRPAttribution,
        RISEAttribution,
        LeaveOneOut,
        KernelSHAPBudget,
        MaskCLIP,
        CLIPSurgery,
        GradECLIP,
        M2IB,
    )
}


def create_method(name: str, model: ExplainedModel, **options) -> AttributionMethod:
    if name not in METHODS:
        raise ValueError(
            f"unknown explanation method {name!r} (model.init_args.methods); known: {', '.join(sorted(METHODS))}. "
            "Trained explainers go in model.init_args.explainers as {row name: checkpoint}"
        )
    try:
        return METHODS[name](model, **options)
    except TypeError as err:
        raise ValueError(
            f"bad options for method {name!r} (model.init_args.method_options.{name}): {err}"
        ) from err
