"""etcd members as Docker containers (the Docker host; see pytest_consensus.hosts.docker).

Only the engine calls need Docker; the command each member runs is the same as for a local
process (``member_flags``), which is what the project's unit tests check without an engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_consensus.adapters.etcd.client import EtcdClient, EtcdMemberStatus
from pytest_consensus.contract import HostSpec, Node
from pytest_consensus.contract.errors import HarnessError, NodeStartError
from pytest_consensus.contract.process_cluster import wait_until_serving
from pytest_consensus.hosts.docker import LABEL

DEFAULT_IMAGE = "quay.io/coreos/etcd:v3.5.17"
ETCD_IN_IMAGE = "/usr/local/bin/etcd"


def ensure_image(docker_client: Any, image: str) -> None:
    """The image on this engine, pulled once if it is not; where it can be neither found
    nor pulled (no registry reachable), a HarnessError that says how to build one."""
    import docker

    try:
        docker_client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        docker_client.images.pull(image)
    except Exception as error:
        raise HarnessError(
            f"the etcd image {image} is not on this Docker engine and cannot be pulled "
            f"({type(error).__name__}: {error}); build one offline from a static etcd binary "
            "with `python3 -m pytest_consensus.adapters.etcd.image PATH` and pass it with "
            "--consensus-adapter-option=docker_image=TAG (docs/faults.md)"
        ) from error


class ContainerEtcdNode(EtcdMemberStatus, Node):
    """A member that is one container with a fixed address on the run's network."""

    def __init__(
        self,
        host: HostSpec,
        docker_client: Any,
        image: str,
        command: Sequence[str],
        names: dict[int, str],
        run_tag: str,
        client_port: int,
    ) -> None:
        assert host.container is not None and host.container_network is not None
        self.name = host.name
        self.host = host
        self.names = names
        self.client_port = client_port
        self._docker = docker_client
        api = docker_client.api
        networking = None
        if not host.container_network.startswith("container:"):  # else the holder's address
            networking = api.create_networking_config(
                {host.container_network: api.create_endpoint_config(ipv4_address=host.address)}
            )
        self._id = api.create_container(
            image,
            command=list(command),
            name=host.container,
            labels={LABEL: run_tag},
            networking_config=networking,
            host_config=api.create_host_config(network_mode=host.container_network),
        )["Id"]

    def client(self) -> EtcdClient:
        return EtcdClient(self.name, self.host.address, self.client_port, self.names)

    def start_container(self) -> None:
        """Start the container; a container that will not start names itself."""
        try:
            self._docker.api.start(self._id)
        except Exception as error:
            reason = f"its container {self.host.container} did not start: {error}"
            raise NodeStartError(self.name, reason, self.log_tail()) from error

    def start(self) -> None:
        """Restart after a kill: the container again, then its member serving."""
        self.start_container()
        self.wait_until_serving()

    def wait_until_serving(self, timeout: float = 60.0) -> None:
        wait_until_serving(self, timeout)

    def stop(self) -> None:
        self._docker.api.stop(self._id, timeout=5)

    def kill(self) -> None:
        if self.is_running():
            self._docker.api.kill(self._id, signal="SIGKILL")

    def pause(self) -> None:
        self._docker.api.pause(self._id)

    def resume(self) -> None:
        self._docker.api.unpause(self._id)

    def is_running(self) -> bool:
        return bool(self._docker.api.inspect_container(self._id)["State"]["Running"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return str(self._docker.api.logs(self._id, tail=lines).decode(errors="replace"))
        except Exception as error:
            return f"(no logs: {error})"

    def remove(self) -> None:
        try:
            self._docker.api.remove_container(self._id, force=True)
        except Exception:
            pass
