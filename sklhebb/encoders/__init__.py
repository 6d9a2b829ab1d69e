"""Unsupervised local-learning encoders (scikit-learn transformers)."""
