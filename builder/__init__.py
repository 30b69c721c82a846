"""pydock: a Dockerfile image builder and local image store, running RUN steps with the pyrunc runtime.

The only runtime modules used here are oci_runtime.api, units, users, linux, specgen, errors and jsonio.
"""
