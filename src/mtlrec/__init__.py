"""mtlrec: multi-task learning for e-commerce recommendation."""

__version__ = "0.1.0"
