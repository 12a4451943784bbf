"""Per-student variants: seed = first 8 bytes of HMAC-SHA256(secret, "lab:student")."""

from __future__ import annotations

import hashlib
import hmac
import random
import re

from iiotlab.errors import VariantError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(kind: str, value: str) -> str:
    """A lab or student id: letters, digits, '.', '_', '-', at most 64 characters."""
    if not _NAME.match(value):
        raise VariantError(
            f"{kind} {value!r} is not a valid id: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def derive_seed(course_secret: str, lab_id: str, student_id: str) -> int:
    """The student's seed as an unsigned 64-bit integer (big-endian first 8 bytes)."""
    check_name("lab", lab_id)
    check_name("student", student_id)
    digest = hmac.new(
        course_secret.encode(), f"{lab_id}:{student_id}".encode(), hashlib.sha256
    ).digest()
    return int.from_bytes(digest[:8], "big")


def variant_random(seed: int, purpose: str) -> random.Random:
    """An independent, repeatable random stream for one purpose (register map, faults...).

    Separate streams keep, say, the fault times stable when the register map code changes.
    """
    sub = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return random.Random(int.from_bytes(sub[:8], "big"))
