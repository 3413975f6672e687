"""In-package stand-ins for the external APIs the bridge talks to.

They exist so the demo, the test suite, the benchmarks and a user's own CI run with no
accounts and no network, while still exercising the behaviour that matters to a bridge:
real limits, real deduplication, real signatures and injectable failures. Each module is
imported on demand (nothing is re-exported here) so importing one emulator never pulls in
the others.
"""
