"""Errors that carry a message meant for a person, not a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; `str(err)` is the whole message."""


class DocumentError(UserError):
    """An upload or file that cannot be turned into page images."""


class ModelNotFoundError(UserError):
    """A model key that is not in the catalog."""


class PlanError(UserError):
    """A load plan that cannot run on this machine (with the planner's reason)."""


class WeightsMissingError(UserError):
    """Weights are not on disk and cannot be downloaded now."""


class EngineError(UserError):
    """An engine failed to load or to answer; the fallback router may try the next model."""


class OutOfMemoryError(EngineError):
    """The accelerator ran out of memory; a smaller pixel budget may help."""
