"""Evaluation: task metrics, official scores, figures, and the comparison of two runs."""
