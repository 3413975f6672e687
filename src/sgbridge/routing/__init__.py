"""③ Routing: pure functions from stored events to destination messages. No I/O here."""
