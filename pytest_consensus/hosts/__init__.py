"""Where a cluster's nodes live: a run directory and one address per node, on loopback, in
network namespaces joined by a bridge (with the firewall that cuts links), or in Docker
containers; and the provider that picks one. Imports only :mod:`pytest_consensus.contract`."""
