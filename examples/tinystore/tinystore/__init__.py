"""tinystore: a replicated key-value store (an example for pytest-consensus adapters)."""
