"""Features: sentence encoders and TF-IDF, their embedding cache, fine-tuning, and document-context features."""
