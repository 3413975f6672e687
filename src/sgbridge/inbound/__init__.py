"""① Inbound: HTTP requests → verified, parsed events ready for the journal."""
