"""Starlette and FastAPI: the SERVER span named from the matched route template.

``Starlette.__call__`` and FastAPI's ``__call__`` are wrapped with ``_asgi.serve``: under
uvicorn the server-level instrumentor (``asgi``) has started the span already and this layer
only tells it where to find the route; under any other server or a test client it starts the
span itself. The route is read when the response starts (or the websocket is accepted), after
routing: ``scope["route"]`` (set by Starlette >= 1.0's router and by FastAPI's routes) or, on
older releases, the route whose ``handle`` ran. ``Mount`` prefixes are joined in front, so a
route in a mounted sub-application is ``GET /api/users/{user_id}``; a request that matched no
route keeps the method alone as its name (a path would make one name per URL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _asgi, _http
from telemetry_run.instrumentors.base import Instrumentor, guard

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping
    from types import ModuleType

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["StarletteInstrumentor"]

#: Where the routing notes of a request are kept in its scope: the Mount prefixes, the route.
_ROUTING_KEY: Final = "telemetry_run.starlette_routing"
_TRACED_TYPES: Final = ("http", "websocket")


class _Routing:
    """What routing told about one request: the Mount prefixes passed and the route handled."""

    __slots__ = ("handled", "mounts", "scope")

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        self.scope = scope
        self.mounts: list[Any] = []
        self.handled: Any = None

    def route(self) -> str | None:
        route = self.scope.get("route") or self.handled
        path = getattr(route, "path", None)
        prefix = "".join(mount.path for mount in self.mounts if route is not mount)
        if not isinstance(path, str):
            return prefix or None
        return prefix + path


class StarletteInstrumentor(Instrumentor):
    """Patches ``Starlette.__call__`` and the routes' ``handle`` (route templates)."""

    site: CallSite
    _mount: type
    _wanted: bool = False

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        self.site = _asgi.server_site(
            tracer_provider.get_tracer(__name__, __version__),
            "starlette",
            _http.HttpSettings.from_config(config, "starlette", server=True),
            self.enabled,
        )
        from starlette.routing import Mount

        self._mount = Mount
        self.patcher.wrap("starlette.applications", "Starlette.__call__", self._call)
        # FastAPI's __call__ decides on its own telemetry before Starlette's runs: wrapped too,
        # once FastAPI is imported (if ever; never imported by us).
        from telemetry_run.plugin import register_post_import_hook

        self._wanted = True
        register_post_import_hook(self._patch_fastapi, "fastapi.applications")
        for route in ("Route", "WebSocketRoute", "Mount"):
            self.patcher.wrap("starlette.routing", f"{route}.handle", self._handle)

    def _uninstrument(self) -> None:
        self._wanted = False

    def _patch_fastapi(self, module: ModuleType) -> None:
        if self._wanted:  # not ``active``: FastAPI may be imported already, during instrument
            with guard("starlette: patch FastAPI"):
                fastapi = getattr(module, "FastAPI", None)
                if fastapi is not None and "__call__" in vars(fastapi):
                    self.patcher.wrap(module, "FastAPI.__call__", self._call)

    def _call(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.active or kwargs or len(args) != 3:
            return wrapped(*args, **kwargs)
        scope = args[0]
        if not isinstance(scope, dict) or scope.get("type") not in _TRACED_TYPES:
            return wrapped(*args, **kwargs)
        if _ROUTING_KEY in scope:  # a Starlette app mounted in another: the outer one traces
            return wrapped(*args, **kwargs)
        routing = _Routing(scope)
        scope[_ROUTING_KEY] = routing
        return _asgi.serve(self.site, wrapped, scope, args[1], args[2], "starlette", routing.route)

    def _handle(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if self.active:
            with guard("starlette: route"):
                scope = args[0] if args else kwargs.get("scope")
                routing = scope.get(_ROUTING_KEY) if isinstance(scope, dict) else None
                if isinstance(routing, _Routing):
                    if isinstance(instance, self._mount):
                        routing.mounts.append(instance)
                    else:
                        routing.handled = instance
        return wrapped(*args, **kwargs)
