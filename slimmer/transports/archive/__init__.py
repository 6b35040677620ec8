"""Tar archives of images, read in place and written atomically: ``docker-archive`` (what
``docker save`` writes and ``docker load`` reads) and ``oci-archive`` (a tar of an OCI image
layout), each with its source and sink side by side."""
