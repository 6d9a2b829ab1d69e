"""Classifiers trained by local learning rules."""
