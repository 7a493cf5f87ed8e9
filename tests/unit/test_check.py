"""The jar version reader of ``amq-bridge check`` (META-INF/MANIFEST.MF, no JVM)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from bridge.check import jar_version


def test_jar_version_from_manifest(tmp_path: Path) -> None:
    def jar(name: str, manifest: str | None) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            if manifest is not None:
                archive.writestr("META-INF/MANIFEST.MF", manifest)
        return path

    impl = jar("a.jar", "Manifest-Version: 1.0\r\nBundle-Version: 9.9\r\nImplementation-Version: 5.17.2\r\n\r\n")
    bundle = jar("b.jar", "Manifest-Version: 1.0\nBundle-Version: 1.11.0\n")
    wrapped = jar("c.jar", "Manifest-Version: 1.0\nImplementation-Version: 1.2.3-SNAPSHOT-build\n -42\n\n"
                           "Name: x/\nImplementation-Version: 0.0\n")
    assert jar_version(impl) == "5.17.2"
    assert jar_version(bundle) == "1.11.0"
    assert jar_version(wrapped) == "1.2.3-SNAPSHOT-build-42"
    assert jar_version(jar("d.jar", "Manifest-Version: 1.0\n")) is None
    assert jar_version(jar("e.jar", None)) is None
    (tmp_path / "f.jar").write_text("not a zip")
    assert jar_version(tmp_path / "f.jar") is None
    assert jar_version(tmp_path / "absent.jar") is None
