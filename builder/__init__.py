"""pydock: a Dockerfile image builder and local image store, running RUN steps with the pyrunc runtime.

Only the runtime's public modules are used here; RUNTIME_PUBLIC in tests/test_boundaries.py lists them.
"""
