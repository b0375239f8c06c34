"""The on-disk contract of a FineCap output, for every reader and writer of one."""
