"""What every slimmer HTML page shares, so there is one of each: names from an image as text
(``display``, ``esc``), JSON inside a script block, the page shell (the inlined style and
script, allowed by hash in a Content-Security-Policy that allows nothing else) and the atomic
write. The report page (``report.html``) and the cold-start page (``report.coldstart_html``)
are built on it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from importlib import resources
from typing import Any

from slimmer.transports.layout.files import create_temp, fsync_dir, unlink_quietly

# Characters shown as escapes: C0/C1 controls, DEL, and the bidirectional controls that
# could make a name read as another.
_ESCAPED = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPED.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_ESCAPED.update({c: f"\\u{c:04x}" for c in [0x200E, 0x200F, *range(0x202A, 0x202F),
                                            *range(0x2066, 0x206A)]})


def display(text: str) -> str:
    """A name from the image as readable, unambiguous text (any Python str, including the
    surrogate escapes of undecodable bytes)."""
    raw = text.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace").translate(_ESCAPED)


def esc(text: str) -> str:
    """``display(text)`` escaped for HTML text and attribute values."""
    return html.escape(display(text), quote=True)


def json_block(doc: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    return (json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def swatch(colour: str) -> str:
    """A legend's colour square."""
    return f'<svg viewBox="0 0 14 14" aria-hidden="true"><rect width="14" height="14" ' \
           f'fill="{colour}"/></svg>'


def _asset(name: str) -> str:
    return resources.files("slimmer.report").joinpath("assets", name).read_text("utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_shell(title: str, body: str) -> str:
    """A whole page: ``body`` (markup, already escaped) with the report's style and script
    inlined; ``title`` is text. The page's policy allows exactly those two and loads
    nothing, so it works offline and a name that slipped through as markup could not run."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = (f"default-src 'none'; script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; "
           "img-src 'none'; connect-src 'none'; font-src 'none'; base-uri 'none'; "
           "form-action 'none'")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title>'
            f'<style>{css}</style></head><body>{body}<script>{js}</script>'
            '</body></html>\n')


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename: a
    failure leaves no file, or the old one, never half of one. Raises OSError."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = create_temp(directory, "." + os.path.basename(path) + ".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        unlink_quietly(temp)
        raise
    fsync_dir(directory)
