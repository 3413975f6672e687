"""⑤ Destinations: HTTP clients that turn a batch into requests and classify the responses."""
