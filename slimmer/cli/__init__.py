"""The ``slim`` command: a thin front over ``slimmer.api``, the trust commands and the hook.

Heavy modules (the pipeline, httpx, huey) load inside the commands that need them, so
``slim --help`` and ``slim serve --workers 0`` start fast.
"""

from __future__ import annotations

import click

from slimmer.cli.coldstart import coldstart
from slimmer.cli.hook import jobs, serve, worker
from slimmer.cli.push import analyze, profiles, push
from slimmer.cli.trust import report, verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slimmer", prog_name="slim")
def main() -> None:
    """Make container images smaller and faster to start, without a Docker daemon.

    References: oci:DIR[:TAG|@DIGEST] (an OCI image layout) or
    [docker://]HOST[:PORT]/REPO[:TAG|@DIGEST] (a registry; no HOST means docker.io).
    """


for _command in (push, analyze, coldstart, profiles, verify, report, serve, worker, jobs):
    main.add_command(_command)
