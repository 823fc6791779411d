"""Deliberately broken stores, one per way a store goes wrong.

Each is the project's PySyncObj backend with one bug put in, exposed as an adapter the
suite must fail for the right rule. Run as ``python -m broken_stores.NAME`` by the harness.
"""
