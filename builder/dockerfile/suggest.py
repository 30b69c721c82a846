"""The " (did you mean X?)" hint docker adds to a message about an unknown word."""

from __future__ import annotations

import difflib


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1)
    return f" (did you mean {close[0]}?)" if close else ""
