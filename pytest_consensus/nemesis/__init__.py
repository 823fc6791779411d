"""Faults and the workloads that run through them: fault kinds and schedules, the nemesis
that applies a schedule to a cluster, the Hypothesis search over schedules, and the bounded
workload runner. Imports :mod:`~pytest_consensus.contract`, :mod:`~pytest_consensus.hosts`
and :mod:`~pytest_consensus.clients`."""
