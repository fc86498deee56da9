"""Differential tests: the same code run on gateway and on Channels 4.3.2."""
