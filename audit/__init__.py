"""Audit use cases: verify the log (hash chain, feed, seals), export and check job bundles,
time travel, and the copy of every seal into the seal store."""
