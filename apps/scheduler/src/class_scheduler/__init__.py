"""``class-scheduler``: the background worker process (sweep, relay, cleanup, consumer)."""
