"""docker-like container ids (64 hex digits) and generated names ("adjective_surname")."""

from __future__ import annotations

import os
import re

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

_ADJECTIVES = ("admiring", "brave", "calm", "clever", "dreamy", "eager", "focused", "gallant", "happy",
               "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "sharp", "tender", "vibrant",
               "wizardly", "youthful", "zealous")
_SURNAMES = ("agnesi", "babbage", "curie", "dijkstra", "euler", "fermat", "gauss", "hopper", "kepler",
             "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak")


def new_id() -> str:
    # os.urandom, not secrets: the same kernel bytes, without secrets' 8 ms of imports (hmac, random)
    return os.urandom(32).hex()


def _pick(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]  # the bias over 2**32 is negligible


def generated_name() -> str:
    return f"{_pick(_ADJECTIVES)}_{_pick(_SURNAMES)}"
