"""Attribution plots and prediction output."""

from shapvision.explain.prediction_writer import ShapleyPredictionWriter

__all__ = ["ShapleyPredictionWriter"]
