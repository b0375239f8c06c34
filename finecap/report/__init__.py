"""Statistics, plots, dataset card and gallery of a built output."""
