"""Read side: projections turn the global feed into read models, checkpointed and rebuildable."""
