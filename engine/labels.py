"""Labels from the places models keep them: a text file, an Ultralytics metadata.yaml, or the model file.

A .tflite file may carry a zip archive after its flatbuffer (zipfile finds it from the end):
- TFLite metadata "associated files" (e.g. imagenet_labels.txt in Coral's MobileNets): a .txt member,
  one label per line;
- Ultralytics exports: temp_meta.txt, a Python-literal dict whose 'names' maps class id -> label.
Nothing is executed: the dict is read with ast.literal_eval, the yaml by a small parser of `names:`.
"""

from __future__ import annotations

import ast
import io
import os
import re
import zipfile
from pathlib import Path

MAX_MEMBER_BYTES = 1 << 22  # labels are small; a huge member is not labels


def names_to_list(names) -> list[str] | None:
    """{0: 'person', 1: ...} or ['person', ...] -> a list indexed by class id (gaps named 'class N')."""
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    if isinstance(names, dict) and names and all(isinstance(k, int) and k >= 0 for k in names):
        top = max(names)
        if top > 100_000:
            return None
        return [str(names.get(i, f"class {i}")) for i in range(top + 1)]
    return None


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def yaml_names(text: str) -> list[str] | None:
    """The `names:` of an Ultralytics metadata.yaml: a mapping `  0: person`, a list `- person`, or an
    inline list `names: [a, b]` / mapping `names: {0: a, 1: b}`. Only this key is read."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", line)
        if not m:
            continue
        inline = m.group(1).split(" #")[0].strip()
        if inline:
            try:
                return names_to_list(ast.literal_eval(inline))
            except (ValueError, SyntaxError):  # flow style without quotes: [a, b] or {0: a, 1: b}
                items = [_scalar(s) for s in inline.strip("[]{}").split(",") if s.strip()]
                pairs = [re.match(r"^(\d+)\s*:\s*(.*)$", s) for s in items]
                if items and all(pairs):
                    return names_to_list({int(m.group(1)): _scalar(m.group(2)) for m in pairs})
                return items or None
        mapping: dict[int, str] = {}
        listed: list[str] = []
        for body in lines[i + 1 :]:
            if not body.strip() or body.lstrip().startswith("#"):
                continue
            if not body[0].isspace() and not body.startswith("-"):
                break  # the next top-level key
            item = body.strip()
            km = re.match(r"^(\d+)\s*:\s*(.*)$", item)
            if km:
                mapping[int(km.group(1))] = _scalar(km.group(2))
            elif item.startswith("- "):
                listed.append(_scalar(item[2:]))
            else:
                break
        return names_to_list(mapping) if mapping else (listed or None)
    return None


def read_text_labels(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def from_file(path: str | os.PathLike) -> list[str]:
    """Labels from a file: .yaml/.yml -> its `names:`, anything else one label per line."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).lower().endswith((".yaml", ".yml")):
        names = yaml_names(text)
        if names is None:
            raise ValueError("no 'names:' in this yaml file")
        return names
    return read_text_labels(text)


def from_model_bytes(data: bytes) -> tuple[list[str] | None, str | None]:
    """(labels, where) from the archive appended to a .tflite, or (None, None)."""
    if b"PK\x05\x06" not in data[-(1 << 16) - 22 :]:  # no end-of-central-directory record: no archive
        return None, None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if 0 < i.file_size <= MAX_MEMBER_BYTES]
            for info in infos:
                if Path(info.filename).name == "temp_meta.txt":
                    meta = ast.literal_eval(z.read(info).decode("utf-8"))
                    names = names_to_list(meta.get("names")) if isinstance(meta, dict) else None
                    if names:
                        return names, f"{info.filename} (Ultralytics metadata in the model file)"
            for info in infos:
                if info.filename.lower().endswith(".txt") and "label" in info.filename.lower():
                    return read_text_labels(
                        z.read(info).decode("utf-8")
                    ), f"{info.filename} (in the model file)"
    except (zipfile.BadZipFile, ValueError, SyntaxError, UnicodeDecodeError, OSError, MemoryError):
        return None, None
    return None, None
