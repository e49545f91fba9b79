"""shapvision: learning Shapley-value explanations of vision models."""

__version__ = "0.1.0"
