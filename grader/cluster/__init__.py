"""Grading on many machines: one Celery job per student, run by `iiotlab worker`s.

Needs the `iiotlab[cluster]` extra (Celery and the Redis client). Only `celery_app.py`
imports them; the rest of the package is plain Python and works without the extra.
"""
