"""Errors that carry a message meant for a person, not a traceback.

Two families beside each other under `ChatVlmError`:

- `UserError`: the request or the set-up is wrong and the user can fix it (bad input, an
  unknown model, weights not on disk, a plan that cannot run on this machine);
- `EngineError`: an engine failed to load or to answer (a bug, a broken checkpoint, a GPU out
  of memory, a remote server down); the fallback router tries the next model.

Both print as one line in the CLI (exit status 2); the server logs a traceback for an
`EngineError` (a server fault), never for a `UserError`.
"""

from __future__ import annotations


class ChatVlmError(Exception):
    """Any error of ours; `str(err)` is the whole message. Raised with an `i18n.Message` (`lazy_message`),
    `str(err)` reads in the interface language of whoever shows it and `err.english` is what the app
    stores (an attempt's reason in a transcript)."""

    @property
    def english(self) -> str:
        message = self.args[0] if len(self.args) == 1 else str(self)
        return str(getattr(message, "english", message))


class UserError(ChatVlmError):
    """A problem the user can fix."""


class DocumentError(UserError):
    """An upload or file that cannot be turned into page images."""


class ModelNotFoundError(UserError):
    """A model key that is not in the catalog."""


class PlanError(UserError):
    """A load plan that cannot run on this machine (with the planner's reason)."""


class WeightsMissingError(UserError):
    """Weights are not on disk and cannot be downloaded now."""


class EngineError(ChatVlmError):
    """An engine failed to load or to answer; the fallback router may try the next model."""


class OutOfMemoryError(EngineError):
    """The accelerator ran out of memory; a smaller pixel budget may help."""
