"""Shim: ``import warden_client`` from this folder loads the real package in ../../python/src/warden_client.

The client is the pip-installable package ``warden-client`` (``pip install ./python``); this file only keeps
``controller.py`` and scripts that put examples/stablenew on ``sys.path`` working from a checkout, with the
same code, never a copy.
"""

import importlib.util
import os
import sys

_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "python", "src", "warden_client")
_spec = importlib.util.spec_from_file_location("warden_client", os.path.join(_PACKAGE, "__init__.py"), submodule_search_locations=[_PACKAGE])
if _spec is None or _spec.loader is None:  # pragma: no cover - the checkout is incomplete
    raise ImportError(f"warden_client: the package is missing at {os.path.normpath(_PACKAGE)}; pip install ./python")
_module = importlib.util.module_from_spec(_spec)
# Replacing this module in sys.modules makes `import warden_client` hand out the package itself.
sys.modules["warden_client"] = _module
_spec.loader.exec_module(_module)
