"""Settings read from the environment (IIOTLAB_*), with development defaults."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

DEVELOPMENT_COURSE_SECRET = "iiotlab-development-secret-do-not-use-for-exams"


@dataclass(frozen=True)
class Settings:
    """Every setting iiotlab reads; docs/settings.md documents each one."""

    course_secret: str = DEVELOPMENT_COURSE_SECRET
    data_dir: Path = field(default_factory=lambda: Path.home() / ".iiotlab")
    signing_key_file: Path | None = None
    influx_url: str | None = None
    influx_token: str | None = None
    influx_org: str = "iiotlab"
    influx_bucket: str = "iiotlab"
    sandbox: str = "auto"  # auto | bubblewrap | none: how the grader holds a submission
    sandbox_hide: tuple[Path, ...] = ()  # more paths the sandboxed submission must not see

    @property
    def uses_development_secret(self) -> bool:
        return self.course_secret == DEVELOPMENT_COURSE_SECRET

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        secret = env.get("IIOTLAB_COURSE_SECRET") or DEVELOPMENT_COURSE_SECRET
        if secret == DEVELOPMENT_COURSE_SECRET:
            logger.warning(
                "IIOTLAB_COURSE_SECRET is not set: using the fixed development secret, "
                "so anyone can derive every student's plant. Set it for graded work."
            )
        key_file = env.get("IIOTLAB_SIGNING_KEY")
        return cls(
            course_secret=secret,
            data_dir=Path(env.get("IIOTLAB_DATA_DIR") or Path.home() / ".iiotlab"),
            signing_key_file=Path(key_file) if key_file else None,
            influx_url=env.get("IIOTLAB_INFLUX_URL") or None,
            influx_token=env.get("IIOTLAB_INFLUX_TOKEN") or None,
            influx_org=env.get("IIOTLAB_INFLUX_ORG") or "iiotlab",
            influx_bucket=env.get("IIOTLAB_INFLUX_BUCKET") or "iiotlab",
            sandbox=env.get("IIOTLAB_SANDBOX") or "auto",
            sandbox_hide=tuple(
                Path(p) for p in (env.get("IIOTLAB_SANDBOX_HIDE") or "").split(os.pathsep) if p
            ),
        )
