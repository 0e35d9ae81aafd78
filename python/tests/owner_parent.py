"""A controller stand-in for test_owner_lease.py: starts a Sidecar and the WebUI, says so, then waits to be killed.

    python owner_parent.py CONFIG INSTANCE_ID WARDEN_COMMAND [--no-lifeline]
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src"))

from warden_client import Sidecar  # noqa: E402

config, instance_id, warden = sys.argv[1], sys.argv[2], sys.argv[3]
lifeline = "--no-lifeline" not in sys.argv[4:]
sidecar = Sidecar(config, warden=warden, lifeline=lifeline).start()
entry = sidecar.client.ensure_running(instance_id, timeout=30)
print(json.dumps({"warden": sidecar.pid, "root": entry["pid"], "command": sidecar.command}), flush=True)
while True:  # never stops the sidecar itself: only its death (SIGKILL from the test) may end the WebUI
    time.sleep(3600)
