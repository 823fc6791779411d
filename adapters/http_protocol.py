"""Kept so adapters written against 0.1 keep working: the HTTP protocol's client now lives in
:mod:`pytest_consensus.contract` (import it from there). Nothing in the package imports this."""

from pytest_consensus.contract.http_protocol import (
    TRANSPORT_GRACE,
    HttpStoreClient,
    error_from_body,
)

__all__ = ["TRANSPORT_GRACE", "HttpStoreClient", "error_from_body"]
