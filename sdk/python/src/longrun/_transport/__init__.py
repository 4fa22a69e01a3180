"""How the SDK reaches a server: `rest` (JSON over HTTP, sync and async, for clients and
the worker's fallback) and `stream` (the gRPC `Work` stream of the worker protocol)."""
