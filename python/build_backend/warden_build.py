"""An in-tree PEP 517 build backend for warden-client, standard library only.

Why not setuptools: with build isolation (plain ``pip install ./python``) pip must first download the backend
named in ``[build-system] requires``, which fails offline and on locked-down machines. This backend needs nothing
(``requires = []``), so ``pip install ./python`` works anywhere pip does. It builds a pure-Python wheel of
``src/warden_client``, an sdist, and an editable wheel (PEP 660, a ``.pth`` file pointing at ``src``).
Metadata comes from ``[project]`` in pyproject.toml.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "warden_client"
SOURCE = os.path.join(ROOT, "src", PACKAGE)


def _project() -> Dict[str, Any]:
    """The scalar and list fields of ``[project]`` (the only table this backend reads)."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as handle:
        text = handle.read()
    match = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if match is None:
        raise RuntimeError("pyproject.toml has no [project] table")
    fields: Dict[str, Any] = {}
    for key, value in re.findall(r'^([A-Za-z0-9_-]+)\s*=\s*(".*?"|\[.*?\])\s*$', match.group(1), re.M | re.S):
        fields[key] = re.findall(r'"(.*?)"', value) if value.startswith("[") else value[1:-1]
    for required in ("name", "version"):
        if required not in fields:
            raise RuntimeError(f"pyproject.toml [project] lacks {required}")
    return fields


def _dist_name(project: Dict[str, Any]) -> str:
    return f"{re.sub(r'[-_.]+', '_', project['name'])}-{project['version']}"


def _metadata(project: Dict[str, Any]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    for classifier in project.get("classifiers", []):
        lines.append(f"Classifier: {classifier}")
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.isfile(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as handle:
            body = "\n" + handle.read()
    return "\n".join(lines) + "\n" + body


def _package_files() -> List[Tuple[str, str]]:
    """(archive name, path) of every file of the package: the modules and py.typed, no caches."""
    files = []
    for name in sorted(os.listdir(SOURCE)):
        if name.endswith(".py") or name == "py.typed":
            files.append((f"{PACKAGE}/{name}", os.path.join(SOURCE, name)))
    return files


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(directory: str, entries: List[Tuple[str, bytes]]) -> str:
    project = _project()
    dist = _dist_name(project)
    info = f"{dist}.dist-info"
    wheel_name = f"{dist}-py3-none-any.whl"
    entries = entries + [
        (f"{info}/METADATA", _metadata(project).encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: warden_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/top_level.txt", f"{PACKAGE}\n".encode()),
    ]
    record = [_record_line(name, data) for name, data in entries] + [f"{info}/RECORD,,"]
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    os.makedirs(directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return wheel_name


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


# ── PEP 517 / PEP 660 hooks ─────────────────────────────────────────────────────────────────────────


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = _project()
    info = f"{_dist_name(project)}.dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    with open(os.path.join(metadata_directory, info, "METADATA"), "w", encoding="utf-8") as handle:
        handle.write(_metadata(project))
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None, metadata_directory: Optional[str] = None) -> str:
    return _write_wheel(wheel_directory, [(name, _read(path)) for name, path in _package_files()])


def build_editable(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None, metadata_directory: Optional[str] = None) -> str:
    # A .pth line puts src/ on sys.path: edits to the checkout take effect without reinstalling.
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", (os.path.join(ROOT, "src") + "\n").encode())])


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = _project()
    base = f"{project['name'].replace('-', '_')}-{project['version']}"
    members = ["pyproject.toml", "README.md", "build_backend/warden_build.py"] + [f"src/{name}" for name, _ in _package_files()]
    os.makedirs(sdist_directory, exist_ok=True)
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            path = os.path.join(ROOT, member)
            if os.path.isfile(path):
                archive.add(path, arcname=f"{base}/{member}")
        pkg_info = _metadata(project).encode()
        entry = tarfile.TarInfo(f"{base}/PKG-INFO")
        entry.size = len(pkg_info)
        archive.addfile(entry, io.BytesIO(pkg_info))
    return name
