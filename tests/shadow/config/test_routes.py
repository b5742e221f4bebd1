"""shadow.config.routes: route templates from OpenAPI documents and Next.js source trees."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from shadow.config.endpoints import EndpointMatcher, RoutePattern
from shadow.config.loader import parse_config
from shadow.config.routes import RouteSpec, routes_from_nextjs, routes_from_openapi, routes_to_toml
from shadow.errors import InputError
from tests.conftest import Server

DATA = Path(__file__).resolve().parents[2] / "data" / "routes"
OPENAPI = str(DATA / "openapi.json")
NEXTJS = DATA / "nextjs"


def table(routes: list[RouteSpec]) -> dict[str, tuple[str, ...]]:
    return {r.template: r.methods for r in routes}


# --- OpenAPI -----------------------------------------------------------------------------


def test_openapi_file_with_server_prefix_and_methods() -> None:
    routes = routes_from_openapi(OPENAPI)
    assert table(routes) == {
        "/v1/api/analysis/{analysis_id}": ("GET", "DELETE"),
        "/v1/api/exports/{name}.{ext}": ("GET",),
        "/v1/api/files/{file_path}": ("GET",),  # "file-path" is not a valid name here
        "/v1/api/health": ("GET",),
        "/v1/api/items": ("GET", "POST"),
    }
    assert {r.source for r in routes} == {OPENAPI}
    for r in routes:
        RoutePattern.parse(r.template, r.methods)


def test_openapi_without_servers_and_swagger_base_path(tmp_path: Path) -> None:
    doc = {"openapi": "3.0.3", "paths": {"/": {"get": {}}, "/a/{id}": {"put": {}}}}
    (tmp_path / "o.json").write_text(json.dumps(doc), "utf-8")
    assert table(routes_from_openapi(str(tmp_path / "o.json"))) == {
        "/": ("GET",),
        "/a/{id}": ("PUT",),
    }
    swagger = {"swagger": "2.0", "basePath": "/api/", "paths": {"/x": {"post": {}}}}
    (tmp_path / "s.json").write_text(json.dumps(swagger), "utf-8")
    assert table(routes_from_openapi(str(tmp_path / "s.json"))) == {"/api/x": ("POST",)}


def test_openapi_yaml_when_pyyaml_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    (tmp_path / "o.yaml").write_text(
        "openapi: 3.0.0\npaths:\n  /things/{id}:\n    get: {}\n", "utf-8"
    )
    assert table(routes_from_openapi(str(tmp_path / "o.yaml"))) == {"/things/{id}": ("GET",)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "o.json is not JSON|o.json is neither JSON nor YAML"),
        ('{"paths": {}}', "not an OpenAPI document"),
        ('["openapi"]', "not an OpenAPI document"),
        ('{"openapi": "3.1.0", "paths": {"x": {"get": {}}}}', "does not start with '/'"),
    ],
)
def test_openapi_bad_files_are_input_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "o.json"
    if content is not None:
        path.write_text(content, "utf-8")
    with pytest.raises(InputError, match=message) as info:
        routes_from_openapi(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_openapi_fetched_from_the_running_candidate(candidate: Server) -> None:
    url = f"{candidate.url}/openapi.json"
    routes = routes_from_openapi(url)
    assert table(routes) == {
        "/api/analysis/{analysis_id}": ("GET",),
        "/api/health": ("GET",),
        "/api/insights": ("GET",),
        "/api/insights/{insight_id}": ("GET",),
        "/api/process-results": ("POST",),
        "/api/process-updates": ("GET",),
        "/api/reports": ("GET",),
        "/api/start-analysis": ("POST",),
    }
    assert {r.source for r in routes} == {url}
    matcher = EndpointMatcher(RoutePattern.parse(r.template, r.methods) for r in routes)
    assert matcher.endpoint("GET", "/api/analysis/a1") == "GET /api/analysis/{analysis_id}"


def test_openapi_url_errors_name_the_url(candidate: Server) -> None:
    with pytest.raises(
        InputError, match=re.escape(f"cannot fetch {candidate.url}/nope.json: HTTP 404")
    ):
        routes_from_openapi(f"{candidate.url}/nope.json")
    with pytest.raises(InputError, match=re.escape("cannot fetch http://127.0.0.1:9/openapi.json")):
        routes_from_openapi("http://127.0.0.1:9/openapi.json")


# --- Next.js -----------------------------------------------------------------------------

PAGES = {
    "/api": (),
    "/api/analysis/{id}": (),
    "/api/docs": (),
    "/api/docs/{slug:path}": (),
    "/api/files/{all:path}": (),
    "/api/users": (),
    "/api/users/{user_id}/orders": (),
}
APP_UNDER_API = {
    "/api/auth/{nextauth:path}": ("GET", "POST"),  # export { handler as GET, handler as POST }
    "/api/items": ("GET", "POST"),
    "/api/items/{id}": ("GET", "DELETE"),  # export async function GET / export const DELETE
    "/api/pages": (),  # no visible method exports: any
    "/api/pages/{slug:path}": (),
    "/api/reports": ("GET",),  # (v2) route group dropped
}


def test_nextjs_project_both_routers() -> None:
    routes = routes_from_nextjs(str(NEXTJS))
    assert table(routes) == {
        **PAGES,
        **APP_UNDER_API,
        "/api/admin/stats": ("GET",),  # app/(admin)/api/...: group above api
    }
    by_template = {r.template: r for r in routes}
    assert by_template["/api/analysis/{id}"].source == f"{NEXTJS}/pages/api/analysis/[id].ts"
    assert by_template["/api/items/{id}"].source.endswith("app/api/items/[id]/route.ts")


def test_nextjs_api_directories_given_directly() -> None:
    assert table(routes_from_nextjs(str(NEXTJS / "pages" / "api"))) == PAGES
    assert table(routes_from_nextjs(str(NEXTJS / "pages"))) == PAGES
    assert table(routes_from_nextjs(str(NEXTJS / "app" / "api"))) == APP_UNDER_API


def test_nextjs_ignored_files_and_directories() -> None:
    sources = " ".join(r.source for r in routes_from_nextjs(str(NEXTJS)))
    for ignored in ("_helpers", "_middleware", "_app", "types.d.ts", "README", "@modal",
                    "_lib", "(.)photo", "helpers.ts", "page.tsx", "pages/index.tsx"):  # fmt: skip
        assert ignored not in sources


def test_nextjs_src_layout_and_merged_duplicates(tmp_path: Path) -> None:
    shutil.copytree(NEXTJS / "pages", tmp_path / "src" / "pages")
    route = tmp_path / "src" / "app" / "api" / "users" / "route.ts"
    route.parent.mkdir(parents=True)
    route.write_text("export const GET = () => Response.json([]);\n", "utf-8")
    routes = routes_from_nextjs(str(tmp_path))
    assert table(routes) == PAGES  # pages' /api/users (any method) wins over GET only
    users = next(r for r in routes if r.template == "/api/users")
    assert users.source.count("users") == 2  # both files named


def test_nextjs_api_dir_of_unknown_parent_is_detected_by_route_files(tmp_path: Path) -> None:
    api = tmp_path / "somewhere" / "api"
    (api / "ping").mkdir(parents=True)
    (api / "ping" / "route.ts").write_text("export async function HEAD() {}\n", "utf-8")
    assert table(routes_from_nextjs(str(api))) == {"/api/ping": ("HEAD",)}


def test_nextjs_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        routes_from_nextjs(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="no pages/api or app directory"):
        routes_from_nextjs(str(tmp_path))
    bad = tmp_path / "pages" / "api" / "[[...a]]"
    bad.mkdir(parents=True)
    (bad / "x.ts").write_text("export default () => null;\n", "utf-8")
    with pytest.raises(InputError, match="optional catch-all"):
        routes_from_nextjs(str(tmp_path))


# --- TOML --------------------------------------------------------------------------------


def test_toml_round_trips_through_the_config_parser() -> None:
    routes = routes_from_nextjs(str(NEXTJS)) + routes_from_openapi(OPENAPI)
    text = routes_to_toml(routes)
    assert "# from " in text
    data = tomllib.loads(text)
    config = parse_config(data, source="routes.toml")
    assert [e.pattern.template for e in config.endpoints] == [r.template for r in routes]
    items = next(e for e in data["endpoints"] if e["route"] == "/api/items")
    assert items == {"route": "/api/items", "methods": ["GET", "POST"]}
    assert "methods" not in next(e for e in data["endpoints"] if e["route"] == "/api/users")
    assert config.matcher.endpoint("GET", "/api/docs/a/b") == "GET /api/docs/{slug:path}"
    assert config.matcher.endpoint("GET", "/api/docs") == "GET /api/docs"


def test_toml_comment_cannot_break_out_of_its_line() -> None:
    text = routes_to_toml([RouteSpec("/x", ("GET",), "evil\n[[endpoints]]\nroute = 1")])
    assert tomllib.loads(text) == {"endpoints": [{"route": "/x", "methods": ["GET"]}]}
