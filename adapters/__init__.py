"""Adapters: implementations of the ports (event store, read models, feed, Kafka, MongoDB)."""
