"""Bytes of layers: compression detection and streaming (de)compression, tar reading that keeps
original header blocks, tar header writing, and the threaded layer stream."""
