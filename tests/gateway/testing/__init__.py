"""Tests of gateway.testing: communicators and the live-server test case."""
