"""The command line of the flows, next to `python -m bytewax.run`:

    python -m flows list                 # each flow, one line
    python -m flows describe NAME        # what it does, input, output, settings
    python -m flows check NAME           # validate the environment, print the resolved settings
    python -m flows run NAME [bytewax.run options]
    python -m flows readme               # rewrite README.md's generated parts

`run` is `python -m bytewax.run flows.NAME:flow [options]`, the same process.
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
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable, Optional, Sequence

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


def run(name: str, options: Sequence[str]) -> None:
    """Become `python -m bytewax.run flows.NAME:flow OPTIONS`."""
    load(name)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "bytewax.run", f"flows.{name}:flow", *options])


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
    run_parser = commands.add_parser("run", help="run a flow: python -m bytewax.run flows.NAME:flow [options]",
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
            run(args.name, args.options)
    except ConfigurationError as ex:
        print("\n".join(f"flows: {line}" for line in str(ex).splitlines()), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
