"""ModelFileError: a model file that cannot be read (the one error of rnnpy.io).
"""
from __future__ import annotations


class ModelFileError(ValueError):
    """A model file that is missing, truncated, corrupted or not rnnpy's."""
