"""The project's dataflows, one module each. Every module has `SETTINGS`
(its settings, declared once), `build(**overrides)`, a `flow` built on first
access for `python -m bytewax.run flows.<name>:flow`, `QUICKSTART` (how to
feed and run it) and `EXAMPLE_OUTPUT` (one record it writes).

`python -m flows list|describe|check|run` is the command line around them;
`python -m flows readme` writes what the README shows of each.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOWS = (
    "session_analytics",
    "realtime_analytics",
    "fraud_detection",
    "purchase_correlation",
    "count_or_timeout",
    "quarterly_reports",
    "iot_anomaly",
    "ml_features",
    "multi_output",
    "multi_tenant",
    "exactly_once",
)
"""Every flow module of this package, in the order `list` shows them."""

BROKER = "127.0.0.1:9092"
"""Where `python -m eventio.broker` listens by default."""


@dataclass(frozen=True)
class Quickstart:
    """The commands that make input for a flow and run it, on files and on
    Kafka (`python -m eventio.generators` arguments, then the variables and
    `bytewax.run` options of the run)."""

    generate_file: str
    file_env: str
    generate_kafka: str
    kafka_env: str
    file_run: bool = True
    run_options: str = ""

    @classmethod
    def of(cls, scenario: str) -> "Quickstart":
        """One input of events from the generator's `scenario`."""
        return cls(f"{scenario} --count 20000 --output events.jsonl", "INPUT_PATH=events.jsonl OUTPUT_PATH=out.jsonl",
                   f"{scenario} --count 20000 --topic events --bootstrap {BROKER}",
                   f"KAFKA_BOOTSTRAP_SERVERS={BROKER} STOP_AT_END=true")

    def commands(self, name: str) -> list[str]:
        """The shell lines, the file run first (unless the flow writes only to Kafka)."""
        run = f"python -m bytewax.run flows.{name}:flow" + (f" {self.run_options}" if self.run_options else "")
        lines = []
        if self.file_run:
            lines += ["# on files", f"python -m eventio.generators {self.generate_file}", f"{self.file_env} {run}"]
        lines += ["# on Kafka (start a broker first: python -m eventio.broker)",
                  f"python -m eventio.generators {self.generate_kafka}", f"{self.kafka_env} {run}"]
        return lines
