"""iiotlab: a hands-on industrial internet training lab."""

__version__ = "0.1.0"
