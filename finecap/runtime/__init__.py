"""Execution on Ray: session, dataset graph, shard commit, resume and the build driver."""
