"""The pytest glue, and the only layer that knows pytest's hooks: options and ini keys
(``hooks``), settings and profiles, fixtures, live progress, the terminal summary, adapter
lookup and collection of the installed suite. Registered through the ``pytest11`` entry point
``consensus = pytest_consensus.plugin.hooks``."""
