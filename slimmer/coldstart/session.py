"""A cold-start session: picks the runtime (containerd + runc as root when present, else the
built-in proxy, saying why), starts the private registry containerd pulls from, prepares each
image once (untimed: resolved for this machine's platform, counted, copied into the registry),
then measures runs alternated between the images, each from an empty content store."""

from __future__ import annotations

import os
import platform as host
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from slimmer.coldstart import procs
from slimmer.coldstart.containerd import ContainerdRun, Tools, find_tools
from slimmer.coldstart.model import ColdstartReport, ImageColdstart, RunTimes
from slimmer.coldstart.options import ColdstartOptions, Readiness, RuntimeChoice
from slimmer.coldstart.proxy import ProxyRun
from slimmer.coldstart.registry import REGISTRY_BINARY, PrivateRegistry
from slimmer.errors import RuntimeUnavailableError, StartError
from slimmer.fs.scan import scan_layer
from slimmer.oci.image import Image, Source
from slimmer.oci.layer import FILE, FILE_KINDS
from slimmer.oci.model import Platform
from slimmer.transports import open_source

if TYPE_CHECKING:
    from slimmer.transports.registry.options import RegistryOptions

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
CONTAINERD, PROXY = "containerd", "proxy"


def host_platform() -> Platform:
    """The platform this machine runs (what containerd pulls by default)."""
    machine = host.machine().lower()
    return Platform("linux", _ARCH.get(machine, machine))


@dataclass(frozen=True)
class Runtime:
    """The runtime a session uses: ``containerd`` (with its tools) or ``proxy`` (with the
    reason containerd is not used)."""

    kind: str
    version: str | None
    note: str | None
    tools: Tools | None = None
    registry: str | None = None


def select_runtime(choice: str) -> Runtime:
    """Runtime for ``--runtime``; RuntimeUnavailableError when containerd is asked for and
    cannot be used here."""
    if choice == RuntimeChoice.PROXY:
        return Runtime(PROXY, None, "chosen with --runtime proxy")
    tools, why = find_tools()
    registry = shutil.which(REGISTRY_BINARY)
    if tools is not None and registry is None:
        why = f"{REGISTRY_BINARY} is not installed (Debian package docker-registry; it serves " \
              f"the images to containerd)"
    if tools is not None and registry is not None:
        return Runtime(CONTAINERD, tools.version, None, tools, registry)
    if choice == RuntimeChoice.CONTAINERD:
        raise RuntimeUnavailableError(f"--runtime containerd: {why}")
    return Runtime(PROXY, None, why)


@dataclass
class Prepared:
    """One image ready to be measured: its result entry (runs are added to it), the image,
    and its reference in the private registry (containerd)."""

    result: ImageColdstart
    image: Image
    ref: str | None


class Session(procs.Resource):
    """Use as a context manager: everything it starts is stopped and removed on exit."""

    def __init__(self, options: ColdstartOptions,
                 registry: RegistryOptions | None = None) -> None:
        self.options = options.check()
        self.runtime = select_runtime(options.runtime)
        self.registry_options = registry
        self.namespace = f"slimmer-{secrets.token_hex(4)}"
        self._dir: str | None = None
        self._registry: PrivateRegistry | None = None
        self._count = 0

    def _start(self) -> None:
        if self.runtime.kind == CONTAINERD:
            self._dir = tempfile.mkdtemp(prefix="slim-coldstart-", dir=self.options.work_dir)
            self._registry = PrivateRegistry(os.path.join(self._dir, "registry"),
                                             self.runtime.registry).start()

    def _close(self) -> None:
        if self._registry is not None:
            self._registry.stop()
            self._registry = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- preparing ---------------------------------------------------------------------------

    def prepare(self, source: str | Source, role: str | None = None) -> Prepared:
        """Resolve ``source`` for this machine's platform, count its files and unpacked bytes
        (one scan of every layer, digests and diff_ids checked) and, for containerd, copy it
        into the private registry."""
        src = open_source(source, self.registry_options)
        image = src.resolve([host_platform()]).images[0]
        files = unpacked = 0
        for layer in image.layers:
            for rec in scan_layer(layer).entries:
                if rec.kind in FILE_KINDS:
                    files += 1
                    unpacked += rec.size if rec.kind == FILE else 0
        self._count += 1
        ref = None
        if self._registry is not None:
            ref = self._registry.push(image, f"coldstart/image-{self._count}", "cold")
        name = source if isinstance(source, str) else src.name
        result = ImageColdstart(name, image.descriptor.digest,
                                str(image.platform) if image.platform else None,
                                sum(ly.descriptor.size for ly in image.layers), unpacked,
                                files, len(image.layers), role=role)
        return Prepared(result, image, ref)

    # -- measuring ---------------------------------------------------------------------------

    def measure(self, images: Sequence[Prepared]) -> ColdstartReport:
        """``options.runs`` cold runs of every image, alternated (run 1 of each, then run 2,
        ...); an image that fails is recorded with its output and not run again."""
        for _ in range(self.options.runs):
            for prepared in images:
                if prepared.result.error is None:
                    self._measure_once(prepared)
        return self.report(images)

    def _measure_once(self, prepared: Prepared) -> None:
        opts = self.options
        try:
            if self.runtime.kind == CONTAINERD:
                times = self._containerd_run(prepared, opts.cmd, opts.readiness)
            else:
                with ProxyRun(opts.work_dir) as run:
                    deadline = time.monotonic() + opts.timeout
                    pull = run.pull(prepared.image, deadline, opts.timeout)
                    times = RunTimes(pull, run.unpack(prepared.image, deadline, opts.timeout),
                                     None)
        except StartError as exc:
            prepared.result.error = str(exc)
            prepared.result.output = list(exc.output)
            return
        prepared.result.runs.append(times)

    def _containerd_run(self, prepared: Prepared, argv: tuple[str, ...],
                        readiness: Readiness) -> RunTimes:
        opts, tools = self.options, self.runtime.tools
        assert tools is not None and prepared.ref is not None
        with ContainerdRun(tools, opts.work_dir, self.namespace, opts.tmpfs) as run:
            deadline = time.monotonic() + opts.timeout
            pull, unpack = run.pull(prepared.ref, deadline, opts.timeout)
            start = run.run(prepared.ref, "cold", argv, readiness,
                            opts.ready_log if readiness == Readiness.LOG else None,
                            opts.ready_url if readiness == Readiness.URL else None,
                            deadline, opts.timeout)
        return RunTimes(pull, unpack, start)

    def smoke(self, prepared: Prepared, argv: tuple[str, ...]) -> float:
        """Run ``argv`` once in the image (cold, on containerd); seconds until it exited 0.
        StartError (with its output) when it fails or outlives the timeout."""
        if self.runtime.kind != CONTAINERD:
            raise RuntimeUnavailableError(f"--smoke runs the image, which needs containerd: "
                                          f"{self.runtime.note}")
        return self._containerd_run(prepared, argv, Readiness.EXIT).total

    def report(self, images: Sequence[Prepared]) -> ColdstartReport:
        opts = self.options
        return ColdstartReport(
            self.runtime.kind, self.runtime.version, self.runtime.note,
            opts.tmpfs and self.runtime.kind == CONTAINERD, opts.runs, opts.bandwidth,
            opts.readiness.value, list(opts.cmd), opts.ready_log, opts.ready_url, opts.timeout,
            [p.result for p in images])
