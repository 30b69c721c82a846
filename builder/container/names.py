"""docker-like container ids (64 hex digits) and generated names ("adjective_surname")."""

from __future__ import annotations

import re
import secrets

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

_ADJECTIVES = ("admiring", "brave", "calm", "clever", "dreamy", "eager", "focused", "gallant", "happy",
               "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "sharp", "tender", "vibrant",
               "wizardly", "youthful", "zealous")
_SURNAMES = ("agnesi", "babbage", "curie", "dijkstra", "euler", "fermat", "gauss", "hopper", "kepler",
             "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak")


def new_id() -> str:
    return secrets.token_hex(32)


def generated_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
