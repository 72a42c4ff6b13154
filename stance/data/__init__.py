"""Corpora in one schema: the schema and its checks, the corpus readers, own files, training mixes and tasks."""
