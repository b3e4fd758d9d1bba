"""Finding the real-server tier's binaries, and what a machine without them is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from integrations.sandbox.kube_cluster import BUILD_MARK, BinariesMissing, find_binaries


def _executable(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_machine_without_the_binaries_is_told_how_to_build_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setenv("FORGEBOT_KUBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FORGEBOT_KUBE_BIN_DIR", raising=False)
    with pytest.raises(BinariesMissing, match="apt-get install -y etcd-server"):
        find_binaries()
    _executable(tmp_path / "path", "etcd")
    with pytest.raises(BinariesMissing, match=r"scripts/kube-binaries\.sh --add-deb-src"):
        find_binaries()
    # Half a build (the controller-manager still compiling) is not a build.
    _executable(tmp_path / "cache" / "1.20-go1.19" / "bin", "kube-apiserver")
    with pytest.raises(BinariesMissing):
        find_binaries()
    manager = _executable(tmp_path / "cache" / "1.20-go1.19" / "bin", "kube-controller-manager")
    # A build from before the reflect2 fix (no mark) crashes on custom resources: not a build.
    with pytest.raises(BinariesMissing):
        find_binaries()
    (tmp_path / "cache" / "1.20-go1.19" / "bin" / BUILD_MARK).write_text("reflect2 1.0.2\n")
    found = find_binaries()
    assert found.controller_manager == manager and found.etcd == tmp_path / "path" / "etcd"
    # An explicit folder wins over the cache.
    elsewhere = tmp_path / "elsewhere"
    for name in ("kube-apiserver", "kube-controller-manager"):
        _executable(elsewhere, name)
    monkeypatch.setenv("FORGEBOT_KUBE_BIN_DIR", str(elsewhere))
    assert find_binaries().apiserver == elsewhere / "kube-apiserver"
