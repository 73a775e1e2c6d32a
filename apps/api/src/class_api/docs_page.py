"""The docs page at ``/schema``, served entirely by the service (contract §12).

Swagger UI's JavaScript, CSS and icon come from the ``swagger-ui-bundle-v2`` package and are
served at ``/schema/assets/``; the OpenAPI document is embedded in the page. Nothing is
loaded from a CDN, so the page works offline and under a strict content-security policy that
allows only ``'self'`` (plus the page's own inline start-up script).
"""

from __future__ import annotations

from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

ASSETS_PATH = "/schema/assets"
ASSET_FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
)


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at ``/schema`` and ``/schema/swagger``, loading only the service's assets."""
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def assets_router() -> Router:
    """The UI's files, nothing else of the package (no directory listing)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[Path(str(swagger_ui_path))],
        name="docs-assets",
        include_in_schema=False,
        send_as_attachment=False,
        cache_control=None,
    )
