"""Union-filesystem semantics of a layer stack: the per-layer index from the one-pass scan, the
overlay of layers (whiteouts, opaque directories, replacements) and the paths an image needs."""
