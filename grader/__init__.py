"""iiotlab part: grader."""
