"""What checks may do during a run: the probe context and the grader's attack helpers."""
