"""pytest-consensus: certify consensus-backed key-value stores from plain pytest.

The packages follow a run's flow, lowest layer first (docs/architecture.md): ``contract``
(what a store author implements and imports), ``hosts``, ``clients``, ``nemesis``,
``checkers``, ``report``, and ``plugin``, the pytest glue. Only ``plugin`` implements pytest
hooks; everything below it imports without a pytest session.
"""

__version__ = "0.1.0"
