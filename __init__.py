"""vpcnet: a financial-grade container network for Kubernetes.

The repository root is the ``vpcnet`` package (see setup.cfg): ``app`` (controller, API, CLI),
``flows`` (pure flow compilation), ``ovsdb`` (ovsdbapp clients), ``fabric`` (leaf drivers),
``cni`` (plugin + node daemon), ``sim`` (the lab).
"""
__version__ = "0.1.0"

import warnings as _warnings

# Some libraries (os-ken, ovsdbapp extras) import eventlet, which warns at import time; vpcnet
# itself runs os-ken on native threads (see app/flowengine.py) and never uses eventlet.
_warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated", category=Warning)
