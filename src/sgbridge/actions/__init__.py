"""Segment-compatible actions: the catalog, payloads, and the SendGrid and webhook actions."""
