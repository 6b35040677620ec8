"""GPU code facts that every stage shares, with no I/O: CUDA architecture names and the
binary-compatibility rules (``arch``), and the plain record of what a fat binary holds
(``model``). The codec parses fat binaries into these records; the plan decides with them."""
