"""ocirun: an OCI runtime written in Python, a drop-in for runc."""
import gc

__version__ = "0.1.0"
# The OCI runtime spec version this runtime implements.
OCI_VERSION = "1.3.0"

# Every ocirun process is short-lived (a command, the init until it execs, the exec helper), yet
# its imports allocate enough to trigger a dozen young-generation collections that find nothing
# to free: ~2.5 ms of CPU per create. A high first threshold keeps collection for the long-lived
# ones (`events`, `run` and `exec` in the foreground) without paying it on every command.
gc.set_threshold(100_000)    # (700 by default; the older generations keep theirs)
