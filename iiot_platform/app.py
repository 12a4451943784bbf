"""`create_app(settings)`: the FastAPI application; its lifespan runs the platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from iiot_platform import __version__
from iiot_platform.api import admin, alarms, devices, events, identifiers, telemetry
from iiot_platform.service import PlatformService
from iiot_platform.settings import PlatformSettings
from iiot_platform.stores import TelemetryStore

STATIC = Path(__file__).parent / "static"


def create_app(settings: PlatformSettings, store: TelemetryStore | None = None) -> FastAPI:
    """The platform as an ASGI app. `store` replaces the one the settings name."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = PlatformService(settings, store)
        await service.start()
        app.state.service = service
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="iiotlab platform",
        version=__version__,
        description="Mini industrial internet platform: ingestion of MQTT contract v1, "
        "device registry, time series, rules and alarms, identifier resolution, commands.",
        lifespan=lifespan,
    )
    for module in (devices, telemetry, alarms, identifiers, admin, events):
        _add_routes(app, module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Copy a router's routes onto the app so `app.routes` lists every API route itself
    (FastAPI 0.165 keeps included routers as opaque branches)."""
    for route in router.routes:
        assert isinstance(route, APIRoute)
        app.add_api_route(
            route.path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            summary=route.summary,
            description=route.description,
            name=route.name,
            response_class=route.response_class,
            responses=route.responses,
        )
