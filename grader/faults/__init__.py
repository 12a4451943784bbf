"""Fault injection the grader controls: network cuts between the gateway and its peers."""
