"""Labelling tables with a logged model: files chunk by chunk, or a table on Spark."""
