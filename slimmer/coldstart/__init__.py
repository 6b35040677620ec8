"""Cold start measured on a real runtime: ``slim coldstart`` (pull, unpack and start images
from an empty content store on a private containerd, or a built-in proxy), and what
``slim push --smoke`` / ``--coldstart`` check before a result is tagged.

Importing this package is light (options and the result model); the session, which starts
processes and uses the registry transport, loads in ``slimmer.coldstart.session``.
"""

from __future__ import annotations

from slimmer.coldstart.model import ColdstartReport, ImageColdstart, RunTimes
from slimmer.coldstart.options import ColdstartOptions, PushChecks, Readiness, RuntimeChoice

__all__ = ["ColdstartOptions", "ColdstartReport", "ImageColdstart", "PushChecks", "Readiness",
           "RunTimes", "RuntimeChoice"]
