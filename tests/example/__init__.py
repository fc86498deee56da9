"""A Channels-style chat room written against gateway, as its Channels original would be.

Porting it back to Channels is a rename of ``gateway`` to ``channels`` in the
imports: that is the promise this example keeps honest.
"""
