"""Silence transformers while building tiny models.

Saving prints a progress bar per model, and saving an Idefics3 config builds
transformers' default config internally, which warns about its own default pad
token. Neither says anything about our models; builds should print nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from transformers.utils import logging


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Errors only and no progress bars inside the block; the caller's settings are restored."""
    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
