"""Statistics, plots, dataset card and gallery of a built output."""

from finecap.errors import UserError


class ReportError(UserError, RuntimeError):
    """The output has nothing to report on, or the report was asked for something impossible."""
