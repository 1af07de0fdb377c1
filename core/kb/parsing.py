"""Turn an upload into documents: plain text with Markdown-style headings kept, so chunking can follow the structure.

Supported: .txt, .md, .html, .csv (question,answer rows become one document each) and .pdf (pypdf, pure Python).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any


class DocumentError(ValueError):
    """An upload Parley cannot turn into a document; the message says why, for the caller."""


class UnsupportedDocument(DocumentError):
    pass


class EmptyDocument(DocumentError):
    pass


class BrokenDocument(DocumentError):
    pass


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    text: str
    media_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


MEDIA_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".csv": "text/csv",
    ".pdf": "application/pdf",
}
_BY_CONTENT_TYPE = {value: value for value in MEDIA_TYPES.values()}
SUPPORTED = ", ".join(sorted(MEDIA_TYPES))


def media_type_of(filename: str, content_type: str | None) -> str:
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in MEDIA_TYPES:
        return MEDIA_TYPES[suffix]
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in _BY_CONTENT_TYPE:
        return declared
    raise UnsupportedDocument(f"'{filename or 'upload'}' is not a supported type; send one of {SUPPORTED}")


def normalise(text: str) -> str:
    """Unify line endings and runs of spaces; keep blank lines, which separate paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BrokenDocument("the file is not UTF-8 text") from None


def _stem_title(filename: str) -> str:
    return PurePath(filename or "document").stem.replace("_", " ").replace("-", " ").strip() or "document"


def _first_heading(text: str) -> str | None:
    match = re.search(r"^#{1,6} +(.+)$", text, flags=re.MULTILINE)
    return match[1].strip() if match else None


def _require_text(text: str, what: str) -> str:
    if not text.strip():
        raise EmptyDocument(f"{what} has no text")
    return text


def parse_text(*, title: str, text: str, media_type: str = "text/plain") -> ParsedDocument:
    text = _require_text(normalise(text), f"'{title}'")
    return ParsedDocument(title=title.strip() or "document", text=text, media_type=media_type)


class _HtmlToText(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    _BLOCK = {"p", "div", "section", "article", "li", "ul", "ol", "br", "tr", "table", "blockquote", "pre", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data.replace("\n", " "))


def parse_html(raw: str, *, fallback_title: str) -> ParsedDocument:
    parser = _HtmlToText()
    parser.feed(raw)
    parser.close()
    text = normalise("".join(parser.parts))
    title = normalise(parser.title) or _first_heading(text) or fallback_title
    return ParsedDocument(title=title, text=_require_text(text, f"'{title}'"), media_type="text/html")


def parse_csv(raw: str) -> list[ParsedDocument]:
    """Rows of question,answer (a header naming those columns is optional); each row becomes one document."""
    try:
        rows = [row for row in csv.reader(io.StringIO(raw)) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise BrokenDocument(f"the CSV cannot be read: {exc}") from None
    if not rows:
        raise EmptyDocument("the CSV has no rows")
    header = [cell.strip().lower() for cell in rows[0]]
    if "question" in header and "answer" in header:
        q_col, a_col = header.index("question"), header.index("answer")
        rows = rows[1:]
    elif all(len(row) >= 2 for row in rows):
        q_col, a_col = 0, 1
    else:
        raise BrokenDocument("the CSV needs two columns, question and answer")
    documents = [
        ParsedDocument(
            title=normalise(row[q_col]),
            text=normalise(row[a_col]),
            media_type="text/csv",
            metadata={"row": number, "question": normalise(row[q_col])},
        )
        for number, row in enumerate(rows, start=1)
        if len(row) > max(q_col, a_col) and row[q_col].strip() and row[a_col].strip()
    ]
    if not documents:
        raise EmptyDocument("the CSV has no row with both a question and an answer")
    return documents


def parse_pdf(data: bytes, *, fallback_title: str) -> ParsedDocument:
    import pypdf  # only uploads of PDFs pay for the import
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise BrokenDocument("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or fallback_title
    except BrokenDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise BrokenDocument(f"the PDF cannot be read ({type(exc).__name__})") from None
    text = normalise("\n\n".join(pages))
    if not text:
        raise EmptyDocument("the PDF has no extractable text (a scanned image?)")
    return ParsedDocument(title=str(title).strip() or fallback_title, text=text, media_type="application/pdf")


def parse_upload(*, filename: str, content_type: str | None, data: bytes) -> list[ParsedDocument]:
    """Documents in one uploaded file; raises a DocumentError subclass with a reason fit for the caller."""
    media_type = media_type_of(filename, content_type)
    if not data.strip():
        raise EmptyDocument(f"'{filename or 'upload'}' is empty")
    fallback_title = _stem_title(filename)
    if media_type == "application/pdf":
        return [parse_pdf(data, fallback_title=fallback_title)]
    raw = _decode(data)
    if media_type == "text/csv":
        return parse_csv(raw)
    if media_type == "text/html":
        return [parse_html(raw, fallback_title=fallback_title)]
    text = normalise(raw)
    title = (_first_heading(text) if media_type == "text/markdown" else None) or fallback_title
    return [parse_text(title=title, text=text, media_type=media_type)]
