"""Tests of gateway.generic: the generic consumers."""
