"""vpcnet: a financial-grade container network for Kubernetes.

The repository root is the ``vpcnet`` package (see setup.cfg): ``app`` (controller, API, CLI),
``flows`` (pure flow compilation), ``ovsdb`` (ovsdbapp clients), ``fabric`` (leaf drivers),
``cni`` (plugin + node daemon), ``sim`` (the lab).
"""
__version__ = "0.1.0"


def quiet_eventlet_warning() -> None:
    """Some libraries (os-ken, ovsdbapp extras) import eventlet, which warns at import time;
    vpcnet runs os-ken on native threads (see app/flowengine.py) and never uses eventlet. Called
    by the packages that import those libraries (app, ovsdb), not here: a message filter compiles
    a regular expression, and importing `re` would cost every `vpcnet-cni` exec ~15 ms."""
    import warnings
    warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated", category=Warning)
