"""Renderer registry: a LeafState's ``model`` picks the NETCONF data model it is written in."""
from __future__ import annotations

from typing import Callable

from lxml import etree

from . import render_huawei, render_leaf, render_nxos, render_openconfig
from .inputs import InputError
from .model import LeafState
from .xmlutil import to_text

__all__ = ["RENDERERS", "render", "render_text"]

RENDERERS: dict[str, Callable[[LeafState], etree._Element]] = {
    "openconfig": render_openconfig.render,
    "nxos": render_nxos.render,
    "huawei": render_huawei.render,
    "vpcnet-leaf": render_leaf.render,
}


def render(state: LeafState, model: str | None = None) -> etree._Element:
    """The leaf's NETCONF ``<config>`` element in ``model`` (default: the leaf's own model)."""
    model = model or state.model
    try:
        fn = RENDERERS[model]
    except KeyError:
        raise InputError(f"leaf {state.leaf}: model={model!r} has no renderer "
                         f"({', '.join(sorted(RENDERERS))})") from None
    return fn(state)


def render_text(state: LeafState, model: str | None = None) -> str:
    return to_text(render(state, model))
