"""Small lxml helpers shared by the renderers and the diff: deterministic NETCONF XML."""
from __future__ import annotations

from lxml import etree

__all__ = ["NC_NS", "nc_config", "sub", "leaf", "to_text", "data_text", "parse"]

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"


def nc_config(extra_nsmap: dict | None = None) -> etree._Element:
    """An empty ``<config>`` in the NETCONF base namespace (what goes inside edit-config)."""
    nsmap = {None: NC_NS}
    nsmap.update(extra_nsmap or {})
    return etree.Element(f"{{{NC_NS}}}config", nsmap=nsmap)


def _ns(elem: etree._Element) -> str | None:
    return etree.QName(elem).namespace


def sub(parent: etree._Element, tag: str, ns: str | None = None, nsmap: dict | None = None,
        attrib: dict | None = None) -> etree._Element:
    """A child element in ``ns`` (default: the parent's); a new default namespace is declared
    on the child when it differs from the parent's (the usual NETCONF style)."""
    ns = _ns(parent) if ns is None else ns
    if ns != _ns(parent) or nsmap:
        full = {None: ns} if ns != _ns(parent) else {}
        full.update(nsmap or {})
        return etree.SubElement(parent, f"{{{ns}}}{tag}", nsmap=full, attrib=attrib)
    return etree.SubElement(parent, f"{{{ns}}}{tag}", attrib=attrib)


def leaf(parent: etree._Element, tag: str, value, ns: str | None = None) -> etree._Element:
    """``<tag>value</tag>``; booleans print as ``true``/``false``."""
    elem = sub(parent, tag, ns)
    elem.text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return elem


def to_text(elem: etree._Element) -> str:
    """Pretty, stable serialisation (2-space indent, trailing newline)."""
    etree.indent(elem, space="  ")
    return etree.tostring(elem, encoding="unicode") + "\n"


def data_text(config: etree._Element) -> str:
    """The children of a ``<config>`` as one XML fragment (what yanglint reads as a datastore)."""
    return "".join(to_text(child) for child in config)


def parse(text: str | bytes) -> etree._Element:
    """Parse XML without network access or entity expansion; whitespace-only text is dropped."""
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True,
                             remove_comments=True)
    if isinstance(text, str):
        text = text.encode()
    return etree.fromstring(text, parser)
