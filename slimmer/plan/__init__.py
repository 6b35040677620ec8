"""The plan: pure data saying how every output layer is made (grouping, strip decisions,
emitted ops). It reads layer indexes and rules, and imports no codec and no transport."""
