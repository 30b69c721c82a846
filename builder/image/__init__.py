"""Images at rest: the local store, digests and media types, layer tars, OCI layouts and archives."""
