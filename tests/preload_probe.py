"""Imported by the import-race test: records which thread imported it (a real module, not a mock)."""

import threading

IMPORTED_IN = threading.current_thread().name
