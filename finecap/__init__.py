"""FineCap: dense-recaption image datasets at scale, and the FineViT trainer."""

__version__ = "0.1.0"
