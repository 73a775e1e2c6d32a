"""Use cases: one transaction each, events recorded in the outbox of that transaction."""
