"""ASGI servers: one SERVER span per HTTP request and websocket connection, for any ASGI app.

uvicorn (run alone, with ``--workers``, ``--reload``, or as gunicorn's ``UvicornWorker``) loads
the application in ``Config.load``, in the process that serves it: wrapping that method wraps
the loaded application once (``_asgi.traced_app``), whatever framework it is, before the server
takes it. Starlette and FastAPI add the route through their own instrumentor (``starlette``),
which also covers them under other servers and test clients; whichever layer runs first makes
the span and the other adds none. Two kinds of application are left to their own
instrumentors, so that a request is never two SERVER spans: a WSGI one (``--interface wsgi``:
Flask's, Django's) and Django's ``ASGIHandler`` (its middleware makes the span).

Other servers (hypercorn, granian, daphne) are not patched: a Starlette or FastAPI application
is traced there by the ``starlette`` instrumentor alone; a raw ASGI application is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _asgi, _http
from telemetry_run.instrumentors.base import Instrumentor, guard

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["AsgiInstrumentor"]

#: Applications whose own instrumentor makes the SERVER span (by their class's module).
_OWN_INSTRUMENTOR: Final = ("django.",)


class AsgiInstrumentor(Instrumentor):
    """Patches ``uvicorn.config.Config.load`` to wrap the application it loads."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        self.site = _asgi.server_site(
            tracer_provider.get_tracer(__name__, __version__),
            "asgi",
            _http.HttpSettings.from_config(config, "asgi", server=True),
            self.enabled,
        )
        self.patcher.wrap("uvicorn.config", "Config.load", self._load)

    def _load(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        result = wrapped(*args, **kwargs)
        if self.active:
            with guard("asgi: wrap the loaded application"):
                app = instance.loaded_app
                if _traceable(app, instance.interface):
                    instance.loaded_app = _asgi.traced_app(self.site, app, "asgi")
        return result


def _innermost(app: Any) -> Any:
    """The application under uvicorn's own middlewares (proxy headers, ASGI 2, logging)."""
    for _ in range(8):  # a few layers at most; never loop on a cycle
        inner = getattr(app, "app", None)
        if inner is None or not type(app).__module__.startswith("uvicorn."):
            return app
        app = inner
    return app


def _traceable(app: Any, interface: str) -> bool:
    """False for a WSGI app or one whose own instrumentor makes the span (Django)."""
    if interface == "wsgi":
        return False
    module = type(_innermost(app)).__module__
    return not module.startswith(_OWN_INSTRUMENTOR)
