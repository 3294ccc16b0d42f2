"""A run worker process that loads its code location before it is given a run.

Started by ``PrestartedRunLauncher`` as ``python -m gtm_orchestration.run_worker``. It
imports Dagster, the code location's module and the warm-up hooks, builds the repository,
opens the instance, and then waits on stdin for one line: the JSON request naming the run to
execute. It executes that run exactly as ``dagster api execute_run`` does and exits, so every
run still has a process of its own; only the start-up cost has been paid in advance.

If any file of the code location changed on disk while it waited, the worker replaces itself
with a fresh process (``os.execv``) that imports the current code before it runs, so a worker
never runs code older than what is on disk.
"""

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dagster import DagsterInstance
from dagster._cli.api import _execute_run_command_body
from dagster._core.code_pointer import CodePointer
from dagster._core.instance import InstanceRef
from dagster._serdes import deserialize_value
from dagster._utils.interrupts import capture_interrupts

RUN_ARGUMENT = "--run-request"


def resolve_callable(path: str) -> Callable[[], object]:
    """The callable named ``module:attribute``."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def code_files(pointer: CodePointer) -> dict[str, float]:
    """Modification times of the code location's files: every file under its working
    directory that a loaded module came from, and every file in the top-level package's
    folder (configuration read on first use lives there too)."""
    working_directory = getattr(pointer, "working_directory", None) or os.getcwd()
    root = Path(working_directory).resolve()
    paths: set[Path] = set()
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if filename and Path(filename).resolve().is_relative_to(root):
            paths.add(Path(filename).resolve())
    module_name = getattr(pointer, "module", None) or ""
    package_dir = root / module_name.split(".")[0]
    if module_name and package_dir.is_dir():
        paths.update(
            p for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    return {str(p): p.stat().st_mtime for p in paths if p.exists()}


# File times come from a coarse clock: a file written just after a moment may be stamped a
# few milliseconds before it.
_CLOCK_SLACK_S = 1.0


def changed_since(snapshot: Mapping[str, float], imported_at: float | None = None) -> bool:
    """True if a file of ``snapshot`` was modified or removed since it was taken, or was
    written after ``imported_at`` (when the worker began importing the code: it may have
    read the file before or after that write)."""
    newest = None if imported_at is None else imported_at - _CLOCK_SLACK_S
    for path, mtime in snapshot.items():
        try:
            if os.stat(path).st_mtime != mtime or (newest is not None and mtime >= newest):
                return True
        except FileNotFoundError:
            return True
    return False


def prepare(pointer: CodePointer, warm_up: list[str]) -> None:
    """Import the code location and build its repository, then run the warm-up hooks.

    A hook that fails only costs the time it would have saved, so its error is reported on
    stderr and the worker carries on.
    """
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    ReconstructableRepository(pointer).get_definition()
    for hook in warm_up:
        try:
            resolve_callable(hook)()
        except Exception as error:  # noqa: BLE001 - a warm-up is an optimisation only
            print(f"run worker: warm-up {hook} failed: {error!r}", file=sys.stderr, flush=True)


def execute(request: Mapping[str, str], instance: DagsterInstance) -> int:
    """Execute the requested run in this process; the exit status ``dagster api execute_run``
    would give."""
    return _execute_run_command_body(
        request["run_id"], instance, lambda _event: None, set_exit_code_on_failure=False
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code-pointer", required=True, help="serialized CodePointer")
    parser.add_argument("--instance-ref", required=True, help="serialized InstanceRef")
    parser.add_argument("--warm-up", action="append", default=[], help="module:callable")
    parser.add_argument(RUN_ARGUMENT, help="run the request at once (a re-executed worker)")
    args = parser.parse_args(argv)

    pointer = deserialize_value(args.code_pointer, CodePointer)
    with capture_interrupts():
        imported_at = time.time()
        prepare(pointer, args.warm_up)
        snapshot = code_files(pointer)
        instance_ref = deserialize_value(args.instance_ref, InstanceRef)
        with DagsterInstance.from_ref(instance_ref) as instance:
            if args.run_request:
                return execute(json.loads(args.run_request), instance)
            line = sys.stdin.readline()
            if not line.strip():
                return 0  # the launcher went away or retired this worker
            if changed_since(snapshot, imported_at):
                os.execv(
                    sys.executable,
                    [
                        sys.executable,
                        "-m",
                        __spec__.name,
                        *sys.argv[1:],
                        RUN_ARGUMENT,
                        line.strip(),
                    ],
                )
            return execute(json.loads(line), instance)


if __name__ == "__main__":
    sys.exit(main())
