"""Copy one image unchanged into a sink (layers, config and manifest byte-identical), as
``slim coldstart`` serves an image to a runtime from its private registry."""

from __future__ import annotations

from slimmer.oci.image import Image, Sink
from slimmer.oci.model import Descriptor


def copy_image(image: Image, sink: Sink) -> Descriptor:
    """Copy ``image`` into ``sink`` and tag it (``sink.commit``); the sink is aborted on any
    failure. Returns the manifest's descriptor."""
    try:
        for layer in image.layers:
            sink.copy_blob(layer.descriptor, layer.open_compressed, layer.origin)
        sink.put_manifest(image.config.raw, image.manifest.config.media_type)
        desc = sink.put_manifest(image.manifest.raw, image.manifest.media_type)
        sink.commit(desc)
        return desc
    except BaseException:
        sink.abort()
        raise
