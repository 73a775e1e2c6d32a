"""The docs page and everything it loads come from the service itself (contract §12): a real
``class-api`` in a network namespace with only loopback serves the page and each asset it
references (scripts, stylesheet, icon, and what those reference)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from class_api.docs_page import ASSET_FILES, ASSETS_PATH
from tests.support.broker import free_port

API = str(Path(sys.executable).with_name("class-api"))
PROBE = str(Path(__file__).with_name("offline_docs_probe.py"))


def _offline_namespace_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--", "ip", "link", "set", "lo", "up"], capture_output=True
    )
    return probe.returncode == 0


def test_docs_page_loads_everything_from_the_service_with_no_network() -> None:
    port = str(free_port())
    probe = [sys.executable, PROBE, API, port]
    offline = _offline_namespace_works()
    if offline:
        script = "ip link set lo up && exec " + " ".join(f'"{a}"' for a in probe)
        probe = ["unshare", "--net", "--", "sh", "-c", script]
    # Without network namespaces (no root, no user namespaces) the same checks still prove
    # that the page references nothing but the service itself.
    proc = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    if offline:
        assert report["outside_reachable"] is False, "the namespace must have no network"
    assert report["page"]["status"] == 200
    assert report["page"]["content_type"].startswith("text/html")
    assert report["absolute_in_page"] == []
    assets = report["assets"]
    loaded = {url.split(str(port), 1)[1] for url in assets}
    for name in ASSET_FILES:
        assert f"{ASSETS_PATH}/{name}" in loaded
    assert any(u.endswith(".map") for u in loaded), "source maps are followed too"
    for url, result in assets.items():
        assert result["status"] == 200, (url, result)
        assert result["bytes"] > 0, url
    js = [r for u, r in assets.items() if u.endswith(".js")]
    assert all("javascript" in r["content_type"] for r in js)
