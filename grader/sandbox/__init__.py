"""The submission's sandbox: a private workspace, a scrubbed environment, limits, a sweep."""

from grader.sandbox.kinds import (
    BubblewrapSandbox,
    PlainSandbox,
    Sandbox,
    SandboxChoice,
    SandboxUnavailableError,
    choose_sandbox,
)
from grader.sandbox.limits import LimitEvent, RunLimits
from grader.sandbox.workspace import Workspace

__all__ = [
    "BubblewrapSandbox",
    "LimitEvent",
    "PlainSandbox",
    "RunLimits",
    "Sandbox",
    "SandboxChoice",
    "SandboxUnavailableError",
    "Workspace",
    "choose_sandbox",
]
