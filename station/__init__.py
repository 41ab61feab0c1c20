"""IC inspection station: packaging-material classification and micro-defect detection."""

__version__ = "0.1.0"
