"""Fetching URL lists: img2dataset's downloader behind FineCap's URL policy."""
