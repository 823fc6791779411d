"""``consensus-check``: check history files for linearizability without a cluster.

Exit status: 0 when every file is linearizable, 1 when any is not, 2 when any cannot be
read (the message names the file and line; a file with no operations, or cut off, is one),
3 when the time budget ran out on any.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_consensus.checkers.formats import (
    FORMATS,
    PARALLEL_MIN_LINES,
    HistoryFormatError,
    gc_paused,
    read_history_columns,
)
from pytest_consensus.checkers.linearizability import (
    PARALLEL_MIN_OPERATIONS,
    Counterexample,
    check_operations,
)
from pytest_consensus.checkers.models import MODELS, Model, ModelError, model_named
from pytest_consensus.checkers.operations import HistoryError, Operation, pair_columns

EXIT_LINEARIZABLE, EXIT_NOT_LINEARIZABLE, EXIT_UNREADABLE, EXIT_UNKNOWN = 0, 1, 2, 3


def load_model(spec: str) -> Model:
    """A built-in model by name, or a user's Model subclass as ``module:Class``."""
    if ":" not in spec:
        return model_named(spec)
    module_name, _, attribute = spec.partition(":")
    try:
        model_class = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"cannot load model {spec!r}: {error}") from error
    if not (isinstance(model_class, type) and issubclass(model_class, Model)):
        raise ModelError(f"{spec!r} is not a subclass of pytest_consensus.checkers.models.Model")
    return model_class()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consensus-check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--model", required=True, help=f"{' | '.join(MODELS)} | module:ModelClass")
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="history format (default: auto, from the first line)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per file instead of text"
    )
    parser.add_argument(
        "--counterexample",
        action="store_true",
        help="with --json: also find and include a minimal counterexample for each file that "
        "is not linearizable (text output always shows one)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="time budget per file; past it the verdict is unknown (default 60)",
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="DIR",
        help="write a timeline page per file that is not linearizable",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        default=0,
        metavar="N",
        help="processes for a big file: it is read in N parts at once (from "
        f"{PARALLEL_MIN_LINES:,} lines) and its keys checked N at a time (from "
        f"{PARALLEL_MIN_OPERATIONS:,} operations); default 0: one per usable core; "
        "1: no child process",
    )
    return parser


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = -1
    if jobs < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of processes: give 0 (one per core) or more"
        )
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        model = load_model(arguments.model)
    except ModelError as error:
        print(f"consensus-check: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    if not arguments.jobs:
        from pytest_consensus.checkers.forked import usable_cores

        arguments.jobs = usable_cores()
    statuses = []
    for path in arguments.files:
        statuses.append(check_file(path, model, arguments))
    for status in (EXIT_UNREADABLE, EXIT_NOT_LINEARIZABLE, EXIT_UNKNOWN):
        if status in statuses:
            return status
    return EXIT_LINEARIZABLE


def read_operations(path: Path, format: str, workers: int = 1) -> list[Operation]:  # noqa: A002
    """The file's operations; a file with none is an error, never a linearizable verdict."""
    columns, lines = read_history_columns(path, format, workers=workers)
    try:
        with gc_paused():
            operations = pair_columns(columns)
    except HistoryError as error:
        raise HistoryFormatError(f"{path}:{lines[error.position]}: {error.problem}") from None
    if not operations:
        what = "no events" if not len(columns) else "only nemesis events"
        raise HistoryFormatError(
            f"{path}: no operations to check (the file has {what}); is it the right file, "
            "and complete?"
        )
    return operations


def check_file(path: Path, model: Model, arguments: argparse.Namespace) -> int:
    try:
        operations = read_operations(path, arguments.format, arguments.jobs)
        # Shrinking a counterexample costs more than the verdict on most failing histories:
        # only when something shows it (the text, the timeline page, --counterexample).
        wanted = not arguments.json or arguments.counterexample or arguments.html is not None
        result = check_operations(
            operations,
            model,
            budget=arguments.budget,
            counterexample=wanted,
            workers=arguments.jobs,
        )
    except (HistoryFormatError, ModelError) as error:
        message = str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
        if arguments.json:
            print(json.dumps({"file": str(path), "linearizable": None, "error": message}))
        print(f"consensus-check: {message}", file=sys.stderr)
        return EXIT_UNREADABLE
    if arguments.json:
        record: dict[str, object] = {
            "file": str(path),
            "linearizable": result.linearizable,
            "ops": result.operations,
            "seconds": round(result.seconds, 6),
        }
        if arguments.counterexample and result.counterexample is not None:
            record["counterexample"] = counterexample_record(result.counterexample, model)
        print(json.dumps(record, default=repr))
    else:
        verdict = {
            True: "linearizable",
            False: "NOT linearizable",
            None: "unknown (time budget ran out)",
        }[result.linearizable]
        print(
            f"{path}: {verdict} ({result.operations} ops, {result.keys} "
            f"key{'' if result.keys == 1 else 's'}, "
            f"{result.seconds:.3f} s)"
        )
        if result.counterexample is not None:
            print(result.counterexample.describe(model))
    if arguments.html is not None and result.linearizable is not True:
        arguments.html.mkdir(parents=True, exist_ok=True)
        page = arguments.html / f"{path.name}.html"
        from pytest_consensus.checkers.timeline import render_timeline

        page.write_text(render_timeline(operations, model, result, f"{path.name}"))
        if not arguments.json:
            print(f"timeline: {page}")
    if result.linearizable is None:
        return EXIT_UNKNOWN
    return EXIT_LINEARIZABLE if result.linearizable else EXIT_NOT_LINEARIZABLE


def counterexample_record(example: Counterexample, model: Model) -> dict[str, object]:
    """A counterexample as JSON: the key, the minimal subset, the operation that could not
    be placed, the longest order found (with the state after each), and the text."""

    def operation(item: Operation) -> dict[str, object]:
        return {
            "process": item.process,
            "f": item.f,
            "key": item.key,
            "value": item.value,
            "output": item.output,
            "status": item.status,
            "call": item.call,
            "return": item.ret,
        }

    return {
        "key": example.key,
        "minimal": example.minimal,
        "operations": [operation(item) for item in example.operations],
        "blocked": None if example.blocked is None else operation(example.blocked),
        "longest_prefix": [
            {"operation": operation(item), "state": model.describe(state)}
            for item, state in example.longest_prefix
        ],
        "text": example.describe(model),
    }


if __name__ == "__main__":
    sys.exit(main())
