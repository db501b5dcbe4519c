"""A minimal, valid one-page PDF for ``GET /{entity}/{id}/pdf``."""

from __future__ import annotations

from typing import Any


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _lines(company: str, entity: str, obj: dict[str, Any]) -> list[str]:
    customer = (obj.get("CustomerRef") or {}).get("name", "")
    out = [company, f"{entity} {obj.get('DocNumber', obj.get('Id', ''))}",
           f"Date: {obj.get('TxnDate', '')}", f"Customer: {customer}", ""]
    for line in obj.get("Line", []):
        if line.get("DetailType") == "SubTotalLineDetail":
            continue
        desc = line.get("Description") or (line.get("SalesItemLineDetail", {}).get(
            "ItemRef", {}).get("name", line.get("DetailType", "")))
        out.append(f"{desc}  {line.get('Amount', '')}")
    out += ["", f"Total: {obj.get('TotalAmt', '')}", f"Balance due: {obj.get('Balance', '')}"]
    return out


def render_pdf(company: str, entity: str, obj: dict[str, Any]) -> bytes:
    text_ops = ["BT", "/F1 11 Tf", "50 780 Td", "14 TL"]
    for line in _lines(company, entity, obj):
        text_ops.append(f"({_escape(line.encode('latin-1', 'replace').decode('latin-1'))}) Tj T*")
    text_ops.append("ET")
    stream = "\n".join(text_ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    return bytes(out)
