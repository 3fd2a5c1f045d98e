"""The contract suite's use of Django: minimal settings (this module is the URLconf), one request.

Run in the suite's fresh interpreters, where nothing configured Django; called several times in
one of them, so settings are configured only once.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]


def item(request: Any, pk: int) -> Any:
    return HttpResponse(f"item {pk}")


urlpatterns = [path("items/<int:pk>/", item)]


def one_request() -> None:
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]
    from django.test import Client  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="contract-test-only",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
        )
        django.setup()
    # A new Client each time: its handler loads the middleware on its first request, as a
    # server's handler does at start-up.
    response = Client().get("/items/1/")
    assert response.status_code == 200, response
