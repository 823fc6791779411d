"""pytest-consensus: certify consensus-backed key-value stores from plain pytest.

The package is importable without pytest; only ``plugin`` and ``fixtures`` import it.
"""

__version__ = "0.1.0"
