"""A PEP 517 / PEP 660 build backend that needs only the standard library.

Why: setuptools' wheel building needs the ``wheel`` package, and pip's
isolated build environment downloads its requirements, so a machine without
a package index could not ``pip install`` the client.  This backend has no
requirements: it zips the package into a wheel itself.

It packs ``stupidp2p/`` (``*.py`` and ``py.typed``) and the top-level module
``stupidP2P.py``.  Metadata comes from ``pyproject.toml``: the string values
of ``[project]`` (name, version, description, readme, requires-python,
license) and ``[project.scripts]``, one ``key = "value"`` a line.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "stupidp2p"
MODULES = ["stupidP2P.py"]
TAG = "py3-none-any"

__all__ = [
    "get_requires_for_build_wheel", "get_requires_for_build_sdist",
    "get_requires_for_build_editable", "prepare_metadata_for_build_wheel",
    "prepare_metadata_for_build_editable", "build_wheel", "build_sdist",
    "build_editable",
]


def _pyproject() -> Tuple[Dict[str, str], Dict[str, str]]:
    """Return ([project] strings, [project.scripts] strings)."""
    tables: Dict[str, Dict[str, str]] = {}
    current: Optional[Dict[str, str]] = None
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^\[([^\]]+)\]$", line)
            if m:
                current = tables.setdefault(m.group(1).strip(), {})
                continue
            m = re.match(r'^([A-Za-z0-9_.-]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*'
                         r'(#.*)?$', line)
            if m and current is not None:
                current[m.group(1)] = m.group(2).replace('\\"', '"')
    return tables.get("project", {}), tables.get("project.scripts", {})


def _version() -> str:
    """The project's one version: VERSION at the top of the source tree
    (three levels above this package), or beside pyproject.toml in a source
    archive."""
    for path in (os.path.join(ROOT, "..", "..", "..", "VERSION"),
                 os.path.join(ROOT, "VERSION")):
        if os.path.exists(path):
            with open(path, encoding="ascii") as f:
                return f.read().strip()
    raise RuntimeError("no VERSION file above %s" % ROOT)


def _names() -> Tuple[str, str, str]:
    project, _ = _pyproject()
    name, version = project["name"], _version()
    dist = re.sub(r"[-_.]+", "_", name).lower()
    return name, version, dist


def _metadata() -> str:
    project, _ = _pyproject()
    lines = ["Metadata-Version: 2.1", "Name: " + project["name"],
             "Version: " + _version()]
    if "description" in project:
        lines.append("Summary: " + project["description"])
    if "requires-python" in project:
        lines.append("Requires-Python: " + project["requires-python"])
    if "license" in project:
        lines.append("License: " + project["license"])
    body = ""
    readme = project.get("readme")
    if readme and os.path.exists(os.path.join(ROOT, readme)):
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            body = "\n" + f.read()
    return "\n".join(lines) + "\n" + body


def _dist_info_files() -> Dict[str, bytes]:
    _, scripts = _pyproject()
    files = {
        "METADATA": _metadata().encode("utf-8"),
        "WHEEL": ("Wheel-Version: 1.0\nGenerator: stupidp2p_build\n"
                  "Root-Is-Purelib: true\nTag: %s\n" % TAG).encode("ascii"),
        "top_level.txt": ("%s\n%s\n" % (PACKAGE, "\n".join(
            m[:-3] for m in MODULES))).encode("ascii"),
    }
    if scripts:
        files["entry_points.txt"] = ("[console_scripts]\n" + "".join(
            "%s = %s\n" % kv for kv in sorted(scripts.items()))).encode()
    return files


def _sources() -> List[str]:
    """Paths (relative to ROOT) of the files that go into the wheel."""
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, PACKAGE)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py") or fn == "py.typed":
                out.append(os.path.relpath(os.path.join(dirpath, fn), ROOT))
    out.extend(MODULES)
    return [p.replace(os.sep, "/") for p in out]


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return "%s,sha256=%s,%d" % (path, digest.rstrip(b"=").decode(), len(data))


def _write_wheel(wheel_directory: str, entries: Dict[str, bytes]) -> str:
    _, version, dist = _names()
    info = "%s-%s.dist-info" % (dist, version)
    for name, data in _dist_info_files().items():
        entries[info + "/" + name] = data
    record = [_record_line(p, d) for p, d in entries.items()]
    record.append(info + "/RECORD,,")
    entries[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = "%s-%s-%s.whl" % (dist, version, TAG)
    stamp = time.localtime(max(time.time(), 315532800))[:6]
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w",
                         zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            zi = zipfile.ZipInfo(path, stamp)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return filename


def get_requires_for_build_wheel(config_settings=None) -> List[str]:
    """Nothing beyond the standard library."""
    return []


get_requires_for_build_sdist = get_requires_for_build_wheel
get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings=None) -> str:
    """Write the .dist-info directory; return its name."""
    _, version, dist = _names()
    info = "%s-%s.dist-info" % (dist, version)
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    for name, data in _dist_info_files().items():
        with open(os.path.join(metadata_directory, info, name), "wb") as f:
            f.write(data)
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory: str, config_settings=None,
                metadata_directory: Optional[str] = None) -> str:
    """Build the wheel; return its file name."""
    entries: Dict[str, bytes] = {}
    for rel in _sources():
        with open(os.path.join(ROOT, rel), "rb") as f:
            entries[rel] = f.read()
    # The installed package carries its version (stupidp2p/__init__.py
    # reads it from here, or from VERSION when run from the source tree).
    entries[PACKAGE + "/_version.py"] = (
        '"""Written by the build backend."""\n__version__ = %r\n' % _version()).encode()
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory: str, config_settings=None,
                   metadata_directory: Optional[str] = None) -> str:
    """PEP 660: a wheel whose .pth file puts this source tree on the path."""
    _, _, dist = _names()
    return _write_wheel(wheel_directory,
                        {"__editable__.%s.pth" % dist: (ROOT + "\n").encode()})


def build_sdist(sdist_directory: str, config_settings=None) -> str:
    """Build the source archive; return its file name."""
    _, version, dist = _names()
    base = "%s-%s" % (dist, version)
    files = _sources() + ["pyproject.toml", "README.md",
                          "build_backend/stupidp2p_build.py"]
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz",
                      format=tarfile.PAX_FORMAT) as tf:
        for rel in files:
            path = os.path.join(ROOT, rel)
            if os.path.exists(path):
                tf.add(path, arcname=base + "/" + rel, recursive=False)
        version_file = ("%s\n" % version).encode("ascii")
        ti = tarfile.TarInfo(base + "/VERSION")
        ti.size = len(version_file)
        ti.mtime = int(time.time())
        tf.addfile(ti, io.BytesIO(version_file))
        pkg_info = _metadata().encode("utf-8")
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        ti.mtime = int(time.time())
        tf.addfile(ti, io.BytesIO(pkg_info))
    return filename
