"""The OCI distribution client: references, auth, pull and push against a registry's /v2/ API."""
