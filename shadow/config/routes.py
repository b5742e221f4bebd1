"""Route templates taken from the services themselves, for the `[[endpoints]]` of a config.

Two sources:

- an OpenAPI (3.x or Swagger 2) document, from a file (JSON; YAML when PyYAML is
  installed) or fetched from a URL the user gives (`http://127.0.0.1:8000/openapi.json`);
  the path prefix of `servers[0].url` (or Swagger's `basePath`) is put in front;
- a Next.js source tree: `pages/api/**` (pages router; the methods are unknown, so
  any) and `app/**/route.{js,ts,...}` route handlers (app router; the methods are
  those the file exports: `export async function GET`, `export const POST =`,
  `export { handler as GET }`).

Templates use the `{name}` / `{name:path}` syntax of `shadow.config.endpoints.RoutePattern`;
parameter names that syntax cannot hold (`{user-id}`) get `_` for the odd characters.
Errors are `InputError`s naming the file or URL.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shadow.config.endpoints import RoutePattern
from shadow.errors import InputError

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
_FETCH_TIMEOUT = 10.0
_SOURCE_EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")
_ROUTE_FILE = re.compile(r"route\.(?:ts|tsx|js|jsx|mjs|cjs)\Z")
_NOT_ROUTES = re.compile(r"(?:\.d\.ts|\.(?:test|spec)\.[cm]?[jt]sx?)\Z")
_METHOD_ALT = "|".join(HTTP_METHODS)
_EXPORTED = (
    re.compile(rf"export\s+(?:async\s+)?function\s*\*?\s*({_METHOD_ALT})\b"),
    re.compile(rf"export\s+(?:const|let|var)\s+({_METHOD_ALT})\b"),
)
_EXPORT_LIST = re.compile(r"export\s*\{([^}]*)\}")
_BAD_PARAM_CHARS = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class RouteSpec:
    """A route template, its methods (empty: any) and where it was found."""

    template: str
    methods: tuple[str, ...]
    source: str


# --- OpenAPI -----------------------------------------------------------------------------


def routes_from_openapi(source: str) -> list[RouteSpec]:
    """Routes of an OpenAPI document at a file path or an http(s) URL."""
    text = _fetch(source) if source.startswith(("http://", "https://")) else _read(source)
    doc = _parse_document(text, source)
    paths = doc.get("paths")
    if not isinstance(paths, Mapping) or not ("openapi" in doc or "swagger" in doc):
        raise InputError(f"{source} is not an OpenAPI document (no 'openapi' and 'paths')")
    prefix = _server_prefix(doc)
    routes = []
    for raw_path, item in paths.items():
        if not isinstance(raw_path, str) or not raw_path.startswith("/"):
            raise InputError(f"{source}: path {raw_path!r} does not start with '/'")
        if not isinstance(item, Mapping):
            continue
        present = {str(k).upper() for k in item}
        methods = tuple(m for m in HTTP_METHODS if m in present)
        if not methods and "$REF" not in present:
            continue  # a path item with only parameters or descriptions
        template = _openapi_template(prefix + raw_path if raw_path != "/" or not prefix else prefix)
        routes.append(RouteSpec(_checked(template, source), methods, source))
    return _merged(routes)


def _fetch(url: str) -> str:
    import httpx

    try:
        resp = httpx.get(url, timeout=_FETCH_TIMEOUT, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise InputError(f"cannot fetch {url}: {exc or type(exc).__name__}") from None
    if resp.status_code >= 400:
        raise InputError(f"cannot fetch {url}: HTTP {resp.status_code}")
    return resp.text


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"OpenAPI file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read OpenAPI file {path}: {exc}") from None


def _parse_document(text: str, source: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        json_error = str(exc)
        try:
            import yaml
        except ImportError:
            raise InputError(
                f"{source} is not JSON ({json_error}); install PyYAML to read YAML"
            ) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as yexc:
            first = str(yexc).splitlines()[0] if str(yexc) else type(yexc).__name__
            raise InputError(f"{source} is neither JSON nor YAML: {first}") from None
    if not isinstance(doc, Mapping):
        raise InputError(f"{source} is not an OpenAPI document (not an object)")
    return doc


read_document = _read  # the text of a local OpenAPI file (InputError: one line)
fetch_document = _fetch  # the text at an http(s) URL (InputError: one line)
parse_document = _parse_document  # JSON or YAML text as a mapping (InputError: one line)


def _server_prefix(doc: Mapping[str, Any]) -> str:
    """Path part of `servers[0].url` (variables at their defaults) or of `basePath`."""
    servers = doc.get("servers")
    url = ""
    if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
        server = servers[0]
        url = str(server.get("url") or "")
        variables = server.get("variables")
        if isinstance(variables, Mapping):
            for name, var in variables.items():
                default = var.get("default", "") if isinstance(var, Mapping) else ""
                url = url.replace("{" + str(name) + "}", str(default))
    elif isinstance(doc.get("basePath"), str):
        url = doc["basePath"]
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    path = path.rstrip("/")
    return "" if not path else path if path.startswith("/") else "/" + path


server_prefix = _server_prefix  # the path of servers[0].url ("/v1"), or ""


def _openapi_template(path: str) -> str:
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + _param_name(m.group(1)) + "}", path)


# --- Next.js -----------------------------------------------------------------------------


def routes_from_nextjs(root: str) -> list[RouteSpec]:
    """Routes of a Next.js project (or its `pages`/`app`/`api` directory)."""
    if not os.path.isdir(root):
        raise InputError(f"Next.js directory {root} not found")
    roots = list(_route_roots(root))
    if not roots:
        raise InputError(f"{root}: no pages/api or app directory of a Next.js project found")
    routes: list[RouteSpec] = []
    for router, directory, prefix in roots:
        walk = _walk_pages if router == "pages" else _walk_app
        routes.extend(walk(directory, prefix, root))
    return _merged(routes)


def _route_roots(root: str) -> Iterator[tuple[str, str, str]]:
    """(router, directory, URL prefix) for each tree under `root` that holds API routes."""
    name = os.path.basename(os.path.normpath(os.path.abspath(root)))
    parent = os.path.basename(os.path.dirname(os.path.normpath(os.path.abspath(root))))
    if name == "api":
        if parent == "app" or (parent != "pages" and _has_route_file(root)):
            yield "app", root, "/api"
        else:
            yield "pages", root, "/api"
        return
    if name == "pages":
        if os.path.isdir(os.path.join(root, "api")):
            yield "pages", os.path.join(root, "api"), "/api"
        return
    if name == "app":
        yield "app", root, ""
        return
    for base in ("", "src"):
        pages_api = os.path.join(root, base, "pages", "api")
        if os.path.isdir(pages_api):
            yield "pages", pages_api, "/api"
        app = os.path.join(root, base, "app")
        if os.path.isdir(app):
            yield "app", app, ""


def _has_route_file(directory: str) -> bool:
    return any(any(_ROUTE_FILE.match(f) for f in files) for _, _, files in os.walk(directory))


def _is_source(filename: str) -> bool:
    return filename.endswith(_SOURCE_EXTENSIONS) and not _NOT_ROUTES.search(filename)


def _walk_pages(directory: str, prefix: str, root: str) -> Iterator[RouteSpec]:
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "node_modules")
        rel_dirs = _rel_parts(directory, dirpath)
        for filename in sorted(filenames):
            if filename.startswith("_") or not _is_source(filename):
                continue
            stem = filename.rsplit(".", 1)[0]
            segments = rel_dirs if stem == "index" else [*rel_dirs, stem]
            source = _source(root, os.path.join(dirpath, filename))
            for template in _templates(prefix, segments):
                yield RouteSpec(_checked(template, source), (), source)


def _walk_app(directory: str, prefix: str, root: str) -> Iterator[RouteSpec]:
    for dirpath, dirnames, filenames in os.walk(directory):
        # private folders (_x), parallel-route slots (@x), intercepting routes ((.)x)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith((".", "_", "@", "(.)", "(..)", "(...)")) and d != "node_modules"
        )
        for filename in sorted(filenames):
            if not _ROUTE_FILE.match(filename):
                continue
            segments = [s for s in _rel_parts(directory, dirpath) if not _is_group(s)]
            path = os.path.join(dirpath, filename)
            source = _source(root, path)
            methods = _exported_methods(path)
            for template in _templates(prefix, segments):
                yield RouteSpec(_checked(template, source), methods, source)


def _rel_parts(top: str, dirpath: str) -> list[str]:
    rel = os.path.relpath(dirpath, top)
    return [] if rel == "." else rel.split(os.sep)


def _is_group(segment: str) -> bool:
    return segment.startswith("(") and segment.endswith(")")


def _source(root: str, path: str) -> str:
    return os.path.join(root, os.path.relpath(path, root)).replace(os.sep, "/")


def _templates(prefix: str, segments: list[str]) -> list[str]:
    """URL templates for file-system segments; an optional catch-all gives two."""
    parts: list[str] = []
    for i, seg in enumerate(segments):
        if seg.startswith("[[...") and seg.endswith("]]"):
            if i != len(segments) - 1:
                raise InputError(f"optional catch-all {seg} must be the last segment")
            base = prefix + "".join("/" + p for p in parts)
            return [base or "/", f"{base}/{{{_param_name(seg[5:-2])}:path}}"]
        if seg.startswith("[...") and seg.endswith("]"):
            parts.append(f"{{{_param_name(seg[4:-1])}:path}}")
        elif seg.startswith("[") and seg.endswith("]"):
            parts.append(f"{{{_param_name(seg[1:-1])}}}")
        else:
            parts.append(seg)
    return [prefix + "".join("/" + p for p in parts) or "/"]


def _exported_methods(path: str) -> tuple[str, ...]:
    """HTTP methods a route handler file exports (empty when none can be seen)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    found = {m.group(1) for rx in _EXPORTED for m in rx.finditer(text)}
    for block in _EXPORT_LIST.finditer(text):
        for item in block.group(1).split(","):
            exported = item.strip().split(" as ")[-1].strip()
            if exported in HTTP_METHODS:
                found.add(exported)
    return tuple(m for m in HTTP_METHODS if m in found)


# --- shared ------------------------------------------------------------------------------


def _param_name(name: str) -> str:
    clean = _BAD_PARAM_CHARS.sub("_", name.strip()) or "param"
    return "_" + clean if clean[0].isdigit() else clean


def _checked(template: str, source: str) -> str:
    try:
        RoutePattern.parse(template)
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None
    return template


def _merged(routes: Iterable[RouteSpec]) -> list[RouteSpec]:
    """One RouteSpec per template (methods united; any method wins), sorted by template."""
    by_template: dict[str, RouteSpec] = {}
    for r in routes:
        seen = by_template.get(r.template)
        if seen is None:
            by_template[r.template] = r
            continue
        methods: tuple[str, ...] = ()
        if seen.methods and r.methods:
            methods = tuple(m for m in HTTP_METHODS if m in {*seen.methods, *r.methods})
        sources = (
            seen.source if r.source in seen.source.split(", ") else f"{seen.source}, {r.source}"
        )
        by_template[r.template] = RouteSpec(r.template, methods, sources)
    return sorted(by_template.values(), key=lambda r: r.template)


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def routes_to_toml(routes: Iterable[RouteSpec]) -> str:
    """`[[endpoints]]` entries for a config file, each under a comment naming its source."""
    out = []
    for r in routes:
        lines = [
            f"# from {_comment(r.source)}",
            "[[endpoints]]",
            f"route = {_toml_str(r.template)}",
        ]
        if r.methods:
            lines.append(f"methods = [{', '.join(_toml_str(m) for m in r.methods)}]")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


__all__ = ["RouteSpec", "routes_from_nextjs", "routes_from_openapi", "routes_to_toml"]
