"""Runs certification suites on a hardware host.

A plain job spec goes in, a result document comes out. This package imports torch, numpy
and jsonschema only: never Django nor the platform (`certification`, `apps`), because a
runner host has neither database credentials nor the platform's code.
"""

import os

SCHEMA_VERSION = "1.0"

# The judge never loads a vendor's device extension, not even through torch's own autoload of
# ``torch.backends`` entry points; the device process gets the host's setting back
# (runners/device/client.py). Must run before torch is imported.
if "TORCH_DEVICE_BACKEND_AUTOLOAD" not in os.environ:
    os.environ["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"
    os.environ["_RUNNERS_AUTOLOAD_OFF"] = "1"
