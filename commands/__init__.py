"""Write side: command handlers (load stream, decide, append) and the EventStore port."""
