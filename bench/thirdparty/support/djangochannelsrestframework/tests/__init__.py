"""The test app of djangochannelsrestframework's suite (not shipped in its sdist)."""
