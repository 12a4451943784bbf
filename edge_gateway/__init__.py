"""iiotlab part: edge_gateway."""
