"""Exam mode (issue #10): candidates build a gateway against their own live plant within a
time limit, ask for grading, and leave with signed results and a verifiable certificate.

spec.py (exam.yaml), audit.py (the hash-chained log), live.py (a candidate's live lab
environment), attempts.py (grading on it), state.py (candidates, time, attempts),
server.py (portal + proctor API), closing.py (results, gradebook, certificates), cli.py.
"""
