"""One error tree for slimmer; fronts turn it into a one-line message and an exit code."""

from __future__ import annotations


class SlimmerError(Exception):
    """Base of every error slimmer raises on purpose; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


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

    ``status`` is the HTTP status of the reply, if there was one.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(RegistryError):
    """A registry or its token server refused our credentials or the access we asked for."""


class NotFoundError(RegistryError):
    """A registry does not know the repository, tag, manifest or blob we asked for."""


class TrustError(SlimmerError):
    """A key, signature or signed payload is missing, unreadable or does not verify."""
