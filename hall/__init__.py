"""The hall server: configuration, storage, HTTP and devices around the queueing engine."""
