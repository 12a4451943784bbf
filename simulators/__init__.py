"""iiotlab part: simulators."""
