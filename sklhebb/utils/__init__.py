"""Utilities for working with sklhebb itself (see :mod:`sklhebb.utils.discovery`)."""
