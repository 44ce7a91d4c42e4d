"""The webhook dispatcher (`ghibli webhooks`): a process of its own, apart from the consumers.

It sends requests to URLs callers chose, so it holds no HF token and shares no event loop,
connection pool or memory with a Space call. It meets the rest of the pipeline only in `jobs`.
"""
