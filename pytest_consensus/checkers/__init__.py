"""History checkers: linearizability, lost / duplicated / phantom writes, stale reads.

Pure Python and pytest-free, so ``consensus-check`` and users' own scripts can use them.
"""
