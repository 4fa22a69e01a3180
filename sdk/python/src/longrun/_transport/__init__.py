"""How the SDK reaches a server: `rest` (JSON over HTTP, sync and async, for clients and
the worker's fallback) and `stream` (the gRPC `Work` stream of the worker protocol)."""

# The API's version prefix. Here rather than in `rest`, so that what names paths (queues,
# schedules) does not import httpx: a gRPC worker never loads it.
API = "/v1"
