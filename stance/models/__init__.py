"""Classifiers around the features: the model pipeline and its wrappers, per-target models, the cross-encoder."""
