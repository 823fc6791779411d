"""The conformance suite: one module per rule, installed as ``pytest_consensus.conformance``.

Run it with ``pytest --consensus-adapter=NAME`` (no paths), or add it to a run of your own
with ``--pyargs pytest_consensus.conformance``. Tests use only the adapter contract and the
plugin's fixtures, never a backend's internals.
"""
