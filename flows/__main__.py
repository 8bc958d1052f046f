"""The command line of the flows, next to `python -m bytewax.run`:

    python -m flows list                 # each flow, one line
    python -m flows describe NAME        # what it does, input, output, settings
    python -m flows check NAME           # validate the environment, print the resolved settings
    python -m flows run NAME [bytewax.run options]
    python -m flows run NAME --processes N [--recovery-parts P] [bytewax.run options]
    python -m flows readme               # rewrite README.md's generated parts

`run` is `python -m eventio.run flows.NAME:flow [options]` (`bytewax.run` with
the garbage collector tuned for keyed state), the same process; with
`--processes N` it starts N cooperating such processes on this
machine (`eventio.cluster`: free ports, `-i`/`-a`, with `-r DIR` one
recovery directory `DIR/process-K/` each, partitions moved to their owners
when N changes; `--recovery-parts P`, default N, on first start only),
forwards SIGINT and SIGTERM to them and exits with the first failure's
status, stopping the others.
A configuration problem ends `check` and `run` with its message and exit 2.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable, Optional, Sequence

from eventio import cluster
from eventio.broker import free_port
from eventio.bytewax_run import EXIT_USAGE
from eventio.flow_setup import SHARED_SETTINGS
from eventio.settings import ConfigurationError, FlowSettings, Setting
from flows import FLOWS


class UnknownFlowError(ConfigurationError):
    """A flow name that is not one of `FLOWS`."""


def load(name: str) -> ModuleType:
    """The module of flow `name` (imported: nothing is built)."""
    if name not in FLOWS:
        close = difflib.get_close_matches(name, FLOWS, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UnknownFlowError(f"unknown flow {name!r}{hint} (python -m flows list)")
    return importlib.import_module(f"flows.{name}")


def summary(module: ModuleType) -> str:
    """The first sentence of a flow's docstring, on one line."""
    doc = inspect.getdoc(module) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    return first.split(". ", 1)[0].rstrip(".")


def settings_text(settings: Iterable[Setting]) -> str:
    """Settings with their defaults and meanings, for a terminal."""
    return "\n".join(f"  {s.name} (default {s.default_text().strip('`')}): {s.doc}" for s in settings)


def describe(name: str) -> str:
    module = load(name)
    doc = inspect.getdoc(module) or ""
    shared = {s.name for s in SHARED_SETTINGS}
    example = json.dumps(module.EXAMPLE_OUTPUT)
    return "\n".join([
        f"flows.{name}", "", doc, "",
        "Try it:", *(f"  {line}" for line in module.QUICKSTART.commands(name)), "",
        "An output record:", f"  {example}", "",
        "Settings of this flow (environment variables; build(**overrides) takes them in lower case):",
        settings_text(s for s in module.SETTINGS if s.name not in shared), "",
        "Settings every flow has (IO, Kafka, Avro, metrics):",
        settings_text(s for s in module.SETTINGS if s.name in shared),
    ])


README = Path(__file__).resolve().parent.parent / "README.md"
_GENERATED = re.compile(r"(<!-- generated: (?P<what>[\w ]+) -->\n).*?(<!-- end generated -->)", re.S)


def readme_part(what: str) -> str:
    """The generated README text `what` names: `shared settings`, or
    `flow NAME` (commands, the flow's own settings, an output record)."""
    if what == "shared settings":
        return FlowSettings("shared", SHARED_SETTINGS).markdown()
    kind, _, name = what.partition(" ")
    if kind != "flow":
        raise ValueError(f"unknown generated part {what!r}")
    module = load(name)
    shared = {s.name for s in SHARED_SETTINGS}
    return "\n".join(["```console", *module.QUICKSTART.commands(name), "```", "",
                      module.SETTINGS.markdown(s.name for s in module.SETTINGS if s.name not in shared), "",
                      "An output record:", "", "```json", json.dumps(module.EXAMPLE_OUTPUT), "```"])


def readme(text: str) -> str:
    """`text` (the README) with every generated part written anew."""
    return _GENERATED.sub(lambda m: f"{m.group(1)}{readme_part(m.group('what'))}\n{m.group(3)}", text)


def check(name: str) -> str:
    """Build the flow from the environment as a run would (files, Kafka
    properties, metrics port, recovery store checks) and show its settings."""
    module = load(name)
    module.build()
    values = module.SETTINGS.resolve()
    width = max(len(variable) for variable, _ in module.SETTINGS.shown(values))
    rows = [f"  {variable:<{width}}  {text}" for variable, text in module.SETTINGS.shown(values)]
    return "\n".join([f"flows.{name}: the settings are valid; resolved:", *rows])


def run(name: str, options: Sequence[str]) -> int:
    """Become `python -m eventio.run flows.NAME:flow OPTIONS`, or with
    `--processes N` run N of them (`run_processes`)."""
    load(name)
    planned = cluster.split_options(options)
    sys.stdout.flush()
    if planned is None:
        os.execv(sys.executable, [sys.executable, "-m", "eventio.run", f"flows.{name}:flow", *options])
    return run_processes(name, planned)


_CLUSTER_ENV = ("BYTEWAX_ADDRESSES", "BYTEWAX_PROCESS_ID", "BYTEWAX_HOSTFILE_PATH", "BYTEWAX_RECOVERY_DIRECTORY",
                *cluster.PROCESS_ENV)
"""Variables `bytewax.run` reads instead of `-i`/`-a`/`-r`, and the runner's
own (`cluster.OutputLayout`): not passed on from the environment."""
FORWARDED = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 10.0
"""How long the other processes have to stop after one failed, before SIGKILL."""


def run_processes(name: str, planned: cluster.RunOptions) -> int:
    """Start the processes, forward SIGINT/SIGTERM to them, wait; the first
    failure's exit status (the others stopped by SIGTERM), else 0."""
    directories = None
    if planned.recovery is not None:
        directories = cluster.prepare_recovery(planned.recovery, planned.processes,
                                               planned.recovery_parts or planned.processes, cluster.init_parts)
    parts = len(cluster.partition_files(planned.recovery)) if planned.recovery is not None else planned.processes
    ports = [free_port() for _ in range(planned.processes)]
    commands = cluster.bytewax_commands(f"flows.{name}:flow", planned.bytewax, ports, directories, sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in _CLUSTER_ENV}
    procs: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    # A signal while the processes start waits until all have started, then reaches all.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    for k, argv in enumerate(commands):
        # Each child in a process group of its own: a Ctrl-C reaches it once, forwarded.
        layout = cluster.OutputLayout(k, planned.processes, parts)
        procs.append(subprocess.Popen(argv, env={**env, **layout.env()}, process_group=0,
                                      preexec_fn=_die_with_parent))
        print(f"flows: process {k} of {len(commands)} (pid {procs[-1].pid}): {' '.join(argv[1:])}",
              file=sys.stderr, flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    running = set(range(len(procs)))
    while running:
        pid, wait_status = os.wait()
        done = next((k for k in running if procs[k].pid == pid), None)
        if done is None:
            continue
        running.discard(done)
        procs[done].returncode = code = os.waitstatus_to_exitcode(wait_status)
        if code != 0:
            status = cluster.exit_status(code)
            print(f"flows: process {done} exited with status {status}; stopping the others",
                  file=sys.stderr, flush=True)
            _stop([procs[k] for k in running])
            return status
    return 0


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM `procs`, and SIGKILL those still running after `STOP_GRACE_S`."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()


def _die_with_parent() -> None:
    """In a child: SIGKILL it when the runner dies (Linux `PR_SET_PDEATHSIG`),
    so a `kill -9` of the runner leaves no process of the cluster behind;
    and take the signals the runner blocks while starting."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Every flow reads its settings from environment variables: "
                                            "`describe NAME` lists them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,describe,check,run,readme}")
    commands.add_parser("list", help="each flow, one line")
    for command, what in (("describe", "what a flow does, its input, output and settings"),
                          ("check", "validate the environment for a flow and print its resolved settings")):
        commands.add_parser(command, help=what).add_argument("name", metavar="NAME")
    run_parser = commands.add_parser("run", help="run a flow: python -m eventio.run flows.NAME:flow [options]; "
                                     "--processes N: N cooperating processes on this machine",
                                     add_help=False)
    run_parser.add_argument("name", metavar="NAME")
    run_parser.add_argument("options", nargs=argparse.REMAINDER, help="python -m bytewax.run options (-w, -r, ...)")
    commands.add_parser("readme", help="rewrite the generated parts of README.md (settings tables, quickstarts)")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            width = max(map(len, FLOWS))
            print("\n".join(f"{name:<{width}}  {summary(load(name))}" for name in FLOWS))
        elif args.command == "describe":
            print(describe(args.name))
        elif args.command == "check":
            print(check(args.name))
        elif args.command == "readme":
            README.write_text(readme(README.read_text()))
        else:
            return run(args.name, args.options)
    except ConfigurationError as ex:
        print("\n".join(f"flows: {line}" for line in str(ex).splitlines()), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
