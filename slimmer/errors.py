"""One error tree for slimmer; fronts turn it into a one-line message and an exit code."""

from __future__ import annotations


class SlimmerError(Exception):
    """Base of every error slimmer raises on purpose; ``exit_code`` is what the CLI exits with,
    ``temporary`` whether trying the same thing again later may succeed."""

    exit_code: int = 1

    @property
    def temporary(self) -> bool:
        return False


class UsageError(SlimmerError):
    """Bad command-line or API arguments (unknown option value, bad reference syntax)."""

    exit_code = 2


class ProfileError(SlimmerError):
    """Unknown profile name or malformed profile file."""


class InputError(SlimmerError):
    """The source image is malformed: bad index.json, manifest, config or unknown media type."""


class BlobError(InputError):
    """A blob is missing, truncated, or does not match its digest or declared size."""


class LayerError(InputError):
    """A layer's content is unusable: corrupt compression, bad tar, path escaping the root,
    hardlink to a missing target, or diff_id mismatch."""


class OutputError(SlimmerError):
    """Writing the destination failed; the destination is left as it was."""


class RegistryError(SlimmerError):
    """A registry request failed: unreachable host, protocol error or an error reply.

    ``status`` is the HTTP status of the reply, if there was one. The error is temporary when
    the registry could not be reached or answered 408, 429 or 5xx (after the client's own
    retries), unless the caller says otherwise (a TLS failure will not heal by itself).
    """

    def __init__(self, message: str, status: int | None = None,
                 temporary: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self._temporary = temporary

    @property
    def temporary(self) -> bool:
        if self._temporary is not None:
            return self._temporary
        return self.status is None or self.status >= 500 or self.status in (408, 429)


class AuthError(RegistryError):
    """A registry or its token server refused our credentials or the access we asked for."""

    @property
    def temporary(self) -> bool:
        return False


class NotFoundError(RegistryError):
    """A registry does not know the repository, tag, manifest or blob we asked for."""

    @property
    def temporary(self) -> bool:
        return False


class TrustError(SlimmerError):
    """A key, signature or signed payload is missing, unreadable or does not verify."""


class RuntimeUnavailableError(SlimmerError):
    """The container runtime a command asked for cannot be used on this machine (containerd,
    runc or docker-registry missing, or not running as root)."""


class StartError(SlimmerError):
    """An image did not start or get ready: its command failed, or it was not ready before
    the timeout (``slim coldstart``, ``slim push --smoke``). ``output`` holds the last lines
    it printed."""

    def __init__(self, message: str, output: list[str] | None = None) -> None:
        super().__init__(message)
        self.output = list(output or [])
