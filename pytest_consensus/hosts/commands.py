"""Running the system tools the hosts are made with (ip, iptables, tc, nft)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from pytest_consensus.contract.errors import HarnessError

#: Long enough for a busy machine's iptables lock; a tool that takes longer is stuck.
TOOL_TIMEOUT = 30.0


def run_tool(command: Sequence[str], check: bool = True) -> str:
    """The command's stdout; a missing tool, a hang or (with ``check``) a failure is a
    HarnessError quoting the command and what it printed."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except FileNotFoundError as error:
        raise HarnessError(f"{command[0]} not found: {error}") from error
    except subprocess.TimeoutExpired as error:
        raise HarnessError(f"{' '.join(command)} did not finish in {TOOL_TIMEOUT:.0f} s") from error
    if check and done.returncode != 0:
        raise HarnessError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout
