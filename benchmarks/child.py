"""Run one benchmark case in this process and print its result as JSON."""

from __future__ import annotations

import json
import resource
import sys

import benchmarks.suite  # noqa: F401  (registers the cases)
from benchmarks.harness import CASES


def main(name: str) -> None:
    c = CASES[name]
    result = c.run(**c.params)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
