"""Files on disk: written atomically (atomic.py), read back as untrusted input (untrusted.py)."""
