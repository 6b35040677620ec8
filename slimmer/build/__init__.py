"""Executing a plan: each output layer as one stream (decode, tar filter/merge, compress,
hash) into a sink, and the new config, manifest and index."""
