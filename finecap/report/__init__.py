"""Statistics, plots, dataset card and gallery of a built output."""


class ReportError(RuntimeError):
    """The output has nothing to report on, or the report was asked for something impossible."""
