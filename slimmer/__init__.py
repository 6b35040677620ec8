"""slimmer: make container images smaller and faster to start, without a Docker daemon."""
