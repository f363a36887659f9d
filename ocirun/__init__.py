"""ocirun: an OCI runtime written in Python, a drop-in for runc."""
__version__ = "0.1.0"
# The OCI runtime spec version this runtime implements.
OCI_VERSION = "1.3.0"
