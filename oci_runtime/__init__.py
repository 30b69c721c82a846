"""pyrunc: an OCI runtime with runc's command line, and a library (oci_runtime.api) for Python callers."""

VERSION = "0.1.0"
SPEC_VERSION = "1.0.2-dev"  # the OCI runtime spec version this runtime implements
