"""How events are kept: the stored record, its canonical encoding, the per-stream hash chain,
the seals, and the ports every store adapter implements (event store, seal store, artifacts,
users). Pure code; the adapters in `adapters/` do the I/O."""
