"""Talking to a running cluster and writing down what happened: recording clients and the
history they fill, the retry policy, waiting on a cluster's state (a leader, replicas that
agree), and the flag that stops client loops on Ctrl-C. Imports only
:mod:`pytest_consensus.contract`."""
