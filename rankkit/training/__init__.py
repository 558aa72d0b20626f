"""Training rerankers: learning-to-rank losses, adapters, trainer."""
