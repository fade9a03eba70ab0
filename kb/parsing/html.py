"""HTML: the main content's text under its h1–h6 headings; scripts, styles, navigation dropped.

Before BeautifulSoup builds its tree (a few hundred bytes per element), the page is streamed once
by lxml: more than :data:`MAX_ELEMENTS` elements, or elements nested deeper than :data:`MAX_DEPTH`
(the text walk recurses once per level), are refused with the reason.
"""

from __future__ import annotations

import io
import warnings

from bs4 import BeautifulSoup, NavigableString, Tag, XMLParsedAsHTMLWarning
from lxml import etree

from kb.parsing.errors import ParseError
from kb.parsing.outline import Outline
from kb.parsing.sections import ParsedDocument
from kb.parsing.text import decode_text

DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template", "svg", "iframe"]
HEADINGS = {f"h{n}": n for n in range(1, 7)}
LEAF_BLOCKS = {"p", "pre", "li", "dt", "dd", "blockquote", "tr", "caption", "figcaption", "address"}
# Chrome of generated docs (DocBook, Sphinx, CMS themes): tables of contents and navigation bars.
DROP_CLASSES = {"toc", "navheader", "navfooter", "breadcrumb", "breadcrumbs", "sidebar", "menu", "skip-link"}
BLOCK_TAGS = LEAF_BLOCKS | set(HEADINGS) | {"div", "section", "article", "main", "ul", "ol", "dl", "table",
                                             "tbody", "thead", "body", "hr", "br"}
# Real pages nest a few dozen deep; generated ones rarely past 100.
MAX_DEPTH = 256
MAX_ELEMENTS = 100_000


def parse_html(data: bytes) -> ParsedDocument:
    check_shape(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # XHTML is read as HTML on purpose
        soup = BeautifulSoup(decode_text(data), "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    for tag in soup(DROP):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo"]}):
        tag.decompose()
    for tag in soup.find_all(class_=lambda names: bool(names) and bool(DROP_CLASSES & set(names.split()))):
        if not tag.decomposed:
            tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    outline = Outline()
    walk(root, outline)
    return ParsedDocument(file_type="html", sections=outline.finish(), title=title)


def walk(element: Tag, outline: Outline) -> None:
    inline: list[str] = []
    for child in element.children:
        if isinstance(child, NavigableString):
            if child.__class__ is NavigableString:  # not a Comment/CData/Doctype
                inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        if child.name not in BLOCK_TAGS:
            inline.append(child.get_text(" "))
            continue
        outline.text(" ".join("".join(inline).split()))
        inline = []
        if child.name in HEADINGS:
            outline.heading(HEADINGS[child.name], child.get_text(" "))
        elif child.name in LEAF_BLOCKS and not child.find(list(BLOCK_TAGS - {"br"})):
            separator = "\n" if child.name == "pre" else " "
            text = child.get_text(separator)
            outline.text(text if child.name == "pre" else " ".join(text.split()))
        else:
            walk(child, outline)
    outline.text(" ".join("".join(inline).split()))


def check_shape(data: bytes) -> None:
    """Stream the page once (nothing kept): refuse more than MAX_ELEMENTS elements or nesting past MAX_DEPTH."""
    depth, elements = 0, 0
    try:
        for event, element in etree.iterparse(io.BytesIO(data), events=("start", "end"), html=True,
                                              no_network=True, huge_tree=False, recover=True):
            if event == "end":
                depth -= 1
                element.clear(keep_tail=False)
                continue
            depth, elements = depth + 1, elements + 1
            if depth > MAX_DEPTH:
                raise ParseError(f"The HTML page nests elements more than {MAX_DEPTH} deep; "
                                 "save it as a simpler page and upload that.")
            if elements > MAX_ELEMENTS:
                raise ParseError(f"The HTML page has more than {MAX_ELEMENTS:,} elements; "
                                 "split it into smaller pages and upload those.")
    except etree.XMLSyntaxError:
        return  # what lxml cannot stream, BeautifulSoup reads leniently (and small pages stay small)
