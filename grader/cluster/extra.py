"""Whether the `iiotlab[cluster]` extra is installed, and what to do when it is not."""

from __future__ import annotations

from iiotlab.errors import IiotlabError

INSTALL_HINT = 'pip install "iiotlab[cluster]"'
# A job's message must stay unacknowledged-but-invisible longer than the job can run
# (its time limit and the interrupt grace), else a second worker gets it meanwhile.
VISIBILITY_MARGIN_S = 20.0
DEFAULT_VISIBILITY_TIMEOUT_S = 1200.0


class ClusterError(IiotlabError):
    """Cluster grading cannot start or a job cannot be sent; the message says what to do."""


class BrokerUnreachableError(ClusterError):
    """The broker did not answer (it may be restarting): try again later."""


def require_cluster_extra() -> None:
    """Raise ClusterError naming the install command when Celery or redis is missing."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        raise ClusterError(
            f"cluster grading needs Celery and the Redis client ({exc.name} is missing): "
            f"install them with `{INSTALL_HINT}` on this machine and on every grading "
            "machine, or grade here without --cluster"
        ) from None
