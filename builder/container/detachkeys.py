"""docker's detach keys: `--detach-keys` ("ctrl-p,ctrl-q" by default: a comma-separated list of single
characters or ctrl-<c>) and the scanner that spots them in a terminal's input, passing everything
else on. A partial match is held back; when the next key breaks it, the held keys go on too."""

from __future__ import annotations

from builder.container.records import ContainerError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """The key sequence as bytes; a clear error for a key docker would not accept."""
    keys = bytearray()
    for key in text.split(","):
        low = key.lower()
        if len(key) == 1:
            keys.append(ord(key))
        elif low.startswith("ctrl-") and len(key) == 6 and ("a" <= low[5] <= "z" or low[5] in _CTRL_SPECIALS):
            c = low[5]
            keys.append(_CTRL_SPECIALS[c] if c in _CTRL_SPECIALS else ord(c) - ord("a") + 1)
        else:
            raise ContainerError(f"Invalid detach keys ({text}) provided")
    return bytes(keys)


class DetachScanner:
    """feed(data) -> (bytes to pass on, whether the sequence was typed)."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = 0  # how many bytes of keys matched so far (held back)

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            if self.keys and byte == self.keys[self.held]:
                self.held += 1
                if self.held == len(self.keys):
                    self.held = 0
                    return bytes(out), True
                continue
            if self.held:
                out += self.keys[:self.held]
                self.held = 0
                if byte == self.keys[0]:
                    self.held = 1
                    continue
            out.append(byte)
        return bytes(out), False
