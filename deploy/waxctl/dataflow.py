"""The file waxctl ships to the pods: the flow named by `FLOW`, from the image.

waxctl needs a Python file to deploy; the flows themselves are installed in
the image, so this file only picks one (`FLOW=session_analytics` runs
`flows.session_analytics:flow`).
"""

import importlib
import os
import re

_name = os.environ.get("FLOW", "")
if not re.fullmatch(r"[a-z_][a-z0-9_]*", _name):
    raise SystemExit(f"FLOW must name a module in flows/ (e.g. session_analytics), got {_name!r}")
flow = importlib.import_module(f"flows.{_name}").flow
