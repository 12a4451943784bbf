"""iiotlab part: iiot_platform."""
