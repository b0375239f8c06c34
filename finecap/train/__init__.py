"""FineViT training on FineCap shards: data streaming, models, losses, stage loops, evaluation.

Imports nothing heavy at package import: the CLI registers its commands from here without
loading torch.
"""
