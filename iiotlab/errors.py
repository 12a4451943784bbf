"""One exception hierarchy for every error a user can cause or meet."""

from __future__ import annotations

from pathlib import Path


class IiotlabError(Exception):
    """Base of every iiotlab error. Its message says what to change."""


class ConfigError(IiotlabError):
    """A configuration file (lab.yaml, gateway YAML, scenario) is wrong.

    The message names the file, the line, the key, the bad value and what is expected.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        value: object = None,
        expected: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(self._render(message))

    def _render(self, message: str) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        parts = [f"{where}{message}"]
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        if self.value is not None:
            parts.append(f"got {self.value!r}")
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        return "; ".join(parts)


class PayloadError(IiotlabError):
    """An MQTT payload breaks contract v1; the message is the dead-letter reason."""


class RegisterCodecError(IiotlabError):
    """A value cannot be encoded to, or decoded from, Modbus registers."""


class VariantError(IiotlabError):
    """A plant, lab or student name cannot produce a variant."""


class SignatureError(IiotlabError):
    """A signed result does not verify."""
