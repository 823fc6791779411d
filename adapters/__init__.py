"""Built-in backends, installed as ``pytest_consensus.adapters``.

Kept in the repository's top-level ``adapters/`` folder but installed inside the
``pytest_consensus`` package so a user's own ``adapters`` package is never shadowed.
"""
