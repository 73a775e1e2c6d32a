"""Run by ``test_docs_offline.py`` (a script, stdlib only): start ``class-api`` on the
in-memory store, load its docs page and every asset the page references (and those the assets
reference: CSS ``url(...)``, source maps) from the service itself, and print a JSON report.
The test runs it inside a network namespace that has only loopback."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")
_MAP = re.compile(r"sourceMappingURL=([^\s*]+)")


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # loopback only
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""


def _outside_reachable() -> bool:
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=2).close()
    except OSError:
        return False
    return True


def main() -> None:
    api, port = sys.argv[1], sys.argv[2]
    env = dict(os.environ)
    env["CLASS_MANAGEMENT_SERVICE_USE_MOCK_REPOSITORY"] = "true"
    proc = subprocess.Popen(
        [api, "--host", "127.0.0.1", "--port", port],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    report: dict[str, object] = {"outside_reachable": _outside_reachable(), "assets": {}}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        status, page, ctype = _get(base + "/schema")
        report["page"] = {"status": status, "content_type": ctype}
        html = page.decode("utf-8", "replace")
        report["absolute_in_page"] = re.findall(r"https?://[^\s\"'<>)]+", html)
        todo = [urljoin(base + "/schema", ref) for ref in _REF.findall(html)]
        assets: dict[str, object] = {}
        while todo:
            url = todo.pop()
            if url in assets or url.startswith("data:"):
                continue
            if urlsplit(url).netloc != urlsplit(base).netloc:
                assets[url] = {"status": None, "foreign": True}
                continue
            status, body, ctype = _get(url)
            assets[url] = {"status": status, "bytes": len(body), "content_type": ctype}
            text = body.decode("utf-8", "replace") if url.endswith((".css", ".js")) else ""
            refs = _MAP.findall(text) + (_CSS_URL.findall(text) if url.endswith(".css") else [])
            todo += [urljoin(url, r) for r in refs if not r.startswith("data:")]
        report["assets"] = assets
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
