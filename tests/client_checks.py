"""What every built-in backend's client must do on a real cluster, checked the same way for
each (tests/test_nats.py, tests/test_zookeeper.py): operations at both read levels, a scan,
request ids, and a client that stays bound to its server. Keys take a prefix, so checks can
share one cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_consensus.contract import Cluster, ReadLevel
from pytest_consensus.contract.errors import ConsensusError, Timeout, Unavailable
from pytest_consensus.contract.waiting import wait_for


def check_operations_at_both_read_levels(cluster: Cluster) -> None:
    one, two = (cluster.client(node) for node in cluster.nodes[:2])
    assert one.get("k", timeout=5.0) is None
    one.put("k", "v1", timeout=5.0)
    assert two.get("k", level=ReadLevel.STRONG, timeout=5.0) == "v1"
    wait_for(
        lambda: two.get("k", level=ReadLevel.STALE, timeout=5.0) == "v1",
        timeout=10.0,
        what="a stale read of the new value",
    )
    assert one.cas("k", "other", "v2", timeout=5.0) is False
    assert one.cas("k", "v1", "v2", timeout=5.0) is True
    assert two.cas("new", None, "n1", timeout=5.0) is True  # create
    assert two.cas("new", None, "n2", timeout=5.0) is False
    one.delete("k", timeout=5.0)
    one.delete("k", timeout=5.0)  # deleting an absent key is no error
    assert two.get("k", timeout=5.0) is None
    assert two.cas("k", None, "again", timeout=5.0) is True  # created over a delete
    one.append("list", "a", timeout=5.0)
    two.append("list", "b", timeout=5.0)
    assert one.get("list", timeout=5.0) == "ab"
    one.put("key with spaces", "odd", timeout=5.0)
    assert two.get("key with spaces", timeout=5.0) == "odd"


def check_scan_reads_every_key_under_the_prefix(cluster: Cluster, prefix: str, count: int) -> None:
    """``count`` keys under ``prefix`` (more than the client reads at once), one rewritten,
    one deleted, one that must be encoded, one outside the prefix: every member's scan holds
    the last value of each key under the prefix and nothing else."""
    client = cluster.client(cluster.nodes[0])
    for number in range(count):
        client.put(f"{prefix}0-{number}", f"v{number}", timeout=5.0)
    client.put(f"{prefix}0-7", "rewritten", timeout=5.0)
    client.delete(f"{prefix}0-8", timeout=5.0)
    client.put(f"{prefix} odd key", "encoded", timeout=5.0)
    client.put("other", "outside", timeout=5.0)
    expected = {f"{prefix}0-{n}": f"v{n}" for n in range(count) if n != 8}
    expected.update({f"{prefix}0-7": "rewritten", f"{prefix} odd key": "encoded"})
    for node in cluster.nodes:
        member = cluster.client(node)
        wait_for(
            lambda member=member: member.scan(prefix, timeout=30.0) == expected,  # type: ignore[misc]
            timeout=20.0,
            what=f"{node.name}'s scan to hold every write",
        )


def check_a_request_id_applies_a_write_once(cluster: Cluster, prefix: str = "") -> None:
    """A retried append, cas or put with the same id, even through another server, is
    acknowledged without being applied again."""
    one, two = (cluster.client(node) for node in cluster.nodes[:2])
    listed, checked, put = f"{prefix}list", f"{prefix}c", f"{prefix}p"
    one.append(listed, "x", timeout=5.0, request_id="r-1")
    two.append(listed, "x", timeout=5.0, request_id="r-1")
    assert one.get(listed, timeout=5.0) == "x"
    assert one.cas(checked, None, "first", timeout=5.0, request_id="r-2") is True
    # The retry finds "first" where it expected None: the earlier attempt's success stands.
    assert two.cas(checked, None, "first", timeout=5.0, request_id="r-2") is True
    assert two.cas(checked, None, "second", timeout=5.0, request_id="r-3") is False
    one.put(put, "1", timeout=5.0, request_id="r-4")
    one.put(put, "2", timeout=5.0)
    one.put(put, "1-again", timeout=5.0, request_id="r-4")
    assert two.get(put, timeout=5.0) == "2"


def check_a_client_stays_bound_to_its_server(
    cluster: Cluster, key: str, rejoined: Callable[[], object]
) -> None:
    """Its server killed, a client fails at once (definite: nothing sent) rather than
    moving to another server; the server back (``rejoined`` waits for it), the same client
    works again."""
    node = cluster.nodes[1]
    client = cluster.client(node)
    client.put(key, "v", timeout=5.0)
    node.kill()
    # A call the client sent before it noticed the kill failed indefinitely (its request
    # went out); once the client knows, every call is refused unsent.
    with pytest.raises(ConsensusError):
        client.get(key, level=ReadLevel.STALE, timeout=2.0)
    with pytest.raises(Unavailable):
        client.get(key, level=ReadLevel.STALE, timeout=2.0)
    with pytest.raises(Unavailable):
        client.put(key, "w", timeout=2.0)
    node.start()
    rejoined()
    assert wait_for(
        lambda: client.get(key, timeout=5.0) == "v",
        timeout=30.0,
        what="a read through the restarted server",
        ignore=(Unavailable, Timeout),
    )
