"""warden-client: drive Warden (``warden run``) from Python, and start it as a sidecar that dies with you.

Standard library only, Python 3.8+. See docs/STABLENEW.md for the mapping from a controller's process-manager
calls (start, ensure_running, stop, restart, is_running, pid, check_health, output tail) to this client.
"""

from .client import EventStream, LogStream, WardenClient, WardenError, wait_for
from .sidecar import Sidecar, find_warden, state_dir_of

__all__ = ["EventStream", "LogStream", "Sidecar", "WardenClient", "WardenError", "find_warden", "state_dir_of", "wait_for"]
__version__ = "0.1.0"
