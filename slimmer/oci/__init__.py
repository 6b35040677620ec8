"""The OCI image model: media types, digests, references, manifests, indexes and configs with
their exact bytes, and the Image / Source / Sink protocols every other package works with."""
