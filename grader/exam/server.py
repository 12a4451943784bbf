"""The exam's HTTP app: candidate portal API, proctor API, the two pages.

`create_app(config)` builds the app; its lifespan starts the ExamService (every candidate's
live environments) and stops it. No module state. API in docs/exam.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from grader.catalog import readme_path
from grader.exam.live import LINE_NAME, LiveLab
from grader.exam.service import AttemptRefusedError, ExamConfig, ExamService
from grader.exam.spec import ExamTask
from grader.exam.state import Attempt, Candidate, candidate_points, feedback_view, total


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)


class ExtraTimeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: float = Field(ge=0, le=300)


def _service(request: Request) -> ExamService:
    service: ExamService = request.app.state.service
    return service


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return request.query_params.get("token", "")


def _candidate(request: Request) -> Candidate:
    candidate = _service(request).candidate_of(_bearer(request))
    if candidate is None:
        raise HTTPException(401, "log in with your code (a token stops working when the exam ends)")
    return candidate


def _proctor(request: Request) -> ExamService:
    service = _service(request)
    import secrets

    if not secrets.compare_digest(_bearer(request).encode(), service.proctor_token.encode()):
        raise HTTPException(401, "the proctor token from the server's ready line is needed")
    return service


CandidateDep = Annotated[Candidate, Depends(_candidate)]
ProctorDep = Annotated[ExamService, Depends(_proctor)]


def _task(service: ExamService, task_id: str) -> ExamTask:
    task = service.exam.task(task_id)
    if task is None:
        raise HTTPException(404, f"no task {task_id!r} in this exam")
    return task


def _live(request: Request, candidate: Candidate, task_id: str) -> LiveLab:
    """The candidate's own live environment of a task (404 for no such task)."""
    service = _service(request)
    return service.live[(candidate.student, _task(service, task_id).id)]


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _attempt_view(service: ExamService, attempt: Attempt) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": attempt.id,
        "task": attempt.task,
        "number": attempt.number,
        "state": attempt.state,
        "result": None,
    }
    if attempt.state == "running":
        live = service.live.get((attempt.student, attempt.task))
        # queued: wait for a grading slot; waiting_gateway: (re)start your gateway now;
        # grading: the scenario is playing
        view["phase"] = live.phase if live is not None else "grading"
    if attempt.result is not None:
        if attempt.state == "not_gradable":
            view["result"] = {"gradable": False, "reason": attempt.result.reason}
        else:
            view["result"] = feedback_view(
                attempt.result, service.exam.spec.feedback, service.clock.ended
            )
    return view


def _me(service: ExamService, candidate: Candidate) -> dict[str, Any]:
    exam, clock = service.exam, service.clock
    points = candidate_points(exam, candidate)
    show_score = exam.spec.feedback != "none"
    tasks = []
    for task in exam.tasks:
        live = service.live[(candidate.student, task.id)]
        mine = candidate.of_task(task.id)
        tasks.append(
            {
                "id": task.id,
                "title": task.lab.title.model_dump(),
                "summary": task.lab.summary.model_dump(),
                "points": task.spec.points,
                "attempts_allowed": task.spec.attempts,
                "attempts_used": sum(a.counts_against_limit for a in mine),
                "attempts": [_attempt_view(service, a) for a in mine],
                "score": points[task.id] if show_score else None,
                "readme_url": {
                    lang: f"/api/tasks/{task.id}/readme?lang={lang}" for lang in ("en", "zh")
                },
                "datasheet_url": f"/api/tasks/{task.id}/datasheet",
                "gateway_env_url": f"/api/tasks/{task.id}/gateway.env",
                "ca_url": f"/api/tasks/{task.id}/ca.pem" if live.ca_file() else None,
                "endpoints": live.endpoints(),
                "env": live.gateway_env(),
                # a multi-plant lab: the manifest and each device's datasheet, to download
                # into the folder of gateway.env
                "line_url": f"/api/tasks/{task.id}/line.json" if live.is_line else None,
                "line_datasheet_urls": {
                    device: f"/api/tasks/{task.id}/line/{device}.json"
                    for device in live.line_devices()
                },
            }
        )
    return {
        "student": candidate.student,
        "exam": {
            "id": exam.spec.id,
            "title": exam.spec.title.model_dump(),
            "position": exam.spec.position,
            "position_name": exam.spec.position_name,
            "feedback": exam.spec.feedback,
            "counts": exam.spec.counts,
            "pass_mark": exam.spec.pass_mark,
            "max_points": exam.spec.max_points,
        },
        "deadline": datetime.fromtimestamp(clock.deadline_wall(candidate), UTC).isoformat(
            timespec="seconds"
        ),
        "time_left_s": round(clock.time_left(candidate), 1),
        "paused": clock.paused,
        "ended": clock.ended,
        "score": total(points) if show_score else None,
        "tasks": tasks,
    }


def _portal_routes(app: FastAPI) -> None:
    @app.post("/api/login")
    async def login(body: LoginBody, request: Request) -> JSONResponse:
        service = _service(request)
        client = request.client.host if request.client else "?"
        wait = service.login_blocked(client)
        if wait > 0:
            return JSONResponse(
                {"detail": "too many wrong codes: wait and try again"},
                status_code=429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        candidate = service.login(body.code, client)
        if candidate is None or candidate.token is None:
            raise HTTPException(401, "wrong or already used code (ask the proctor)")
        return JSONResponse({"token": candidate.token, "student": candidate.student})

    @app.get("/api/me")
    async def me(candidate: CandidateDep, request: Request) -> dict[str, Any]:
        return _me(_service(request), candidate)

    @app.get("/api/tasks/{task_id}/datasheet")
    async def datasheet(task_id: str, candidate: CandidateDep, request: Request) -> JSONResponse:
        return JSONResponse(
            _live(request, candidate, task_id).datasheet(), headers=_download("datasheet.json")
        )

    @app.get("/api/tasks/{task_id}/gateway.env")
    async def gateway_env(
        task_id: str, candidate: CandidateDep, request: Request
    ) -> PlainTextResponse:
        return PlainTextResponse(
            _live(request, candidate, task_id).gateway_env_text(), headers=_download("gateway.env")
        )

    @app.get("/api/tasks/{task_id}/line.json")
    async def line_manifest(
        task_id: str, candidate: CandidateDep, request: Request
    ) -> JSONResponse:
        live = _live(request, candidate, task_id)
        if not live.is_line:
            raise HTTPException(404, "this task has one plant: its datasheet is /datasheet")
        return JSONResponse(live.line_manifest(), headers=_download(LINE_NAME))

    @app.get("/api/tasks/{task_id}/line/{device}.json")
    async def line_datasheet(
        task_id: str, device: str, candidate: CandidateDep, request: Request
    ) -> JSONResponse:
        live = _live(request, candidate, task_id)
        sheet = live.line_datasheet(device)
        if sheet is None:
            known = ", ".join(live.line_devices()) or "none (one plant)"
            raise HTTPException(404, f"no device {device!r} in this task's line: {known}")
        return JSONResponse(sheet, headers=_download(f"{device}.json"))

    @app.get("/api/tasks/{task_id}/ca.pem")
    async def ca_pem(task_id: str, candidate: CandidateDep, request: Request) -> PlainTextResponse:
        ca = _live(request, candidate, task_id).ca_file()
        if ca is None:
            raise HTTPException(404, "this task's broker has no TLS")
        return PlainTextResponse(ca.read_text(encoding="utf-8"))

    @app.get("/api/tasks/{task_id}/readme")
    async def readme(
        task_id: str, candidate: CandidateDep, request: Request, lang: str = "en"
    ) -> PlainTextResponse:
        task = _task(_service(request), task_id)
        if lang not in ("en", "zh"):
            raise HTTPException(422, "lang is en or zh")
        text = readme_path(task.lab_path, lang).read_text(encoding="utf-8")
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")

    @app.post("/api/tasks/{task_id}/attempts", status_code=202)
    async def new_attempt(
        task_id: str, candidate: CandidateDep, request: Request
    ) -> dict[str, Any]:
        service = _service(request)
        try:
            attempt = service.new_attempt(candidate, _task(service, task_id))
        except AttemptRefusedError as exc:
            raise HTTPException(409, str(exc)) from None
        return _attempt_view(service, attempt)

    @app.get("/api/attempts/{attempt_id}")
    async def attempt(attempt_id: str, candidate: CandidateDep, request: Request) -> dict[str, Any]:
        service = _service(request)
        found = service.attempts.get(attempt_id)
        if found is None or found.student != candidate.student:
            raise HTTPException(404, "no such attempt of yours")
        return _attempt_view(service, found)


def _proctor_routes(app: FastAPI) -> None:
    @app.get("/api/proctor/candidates")
    async def candidates(service: ProctorDep) -> dict[str, Any]:
        return service.snapshot()

    @app.post("/api/proctor/candidates/{student}/extra-time")
    async def extra_time(student: str, body: ExtraTimeBody, service: ProctorDep) -> dict[str, Any]:
        if student not in service.candidates:
            raise HTTPException(404, f"no candidate {student!r}")
        service.set_extra_time(student, body.percent)
        return service.snapshot()

    @app.post("/api/proctor/candidates/{student}/code")
    async def reissue_code(student: str, service: ProctorDep) -> dict[str, str]:
        if student not in service.candidates or service.clock.ended:
            raise HTTPException(404, f"no candidate {student!r} in a running exam")
        return {"student": student, "code": service.reissue_code(student)}

    @app.post("/api/proctor/pause")
    async def pause(service: ProctorDep) -> dict[str, Any]:
        service.pause()
        return service.snapshot()

    @app.post("/api/proctor/resume")
    async def resume(service: ProctorDep) -> dict[str, Any]:
        service.resume()
        return service.snapshot()

    @app.post("/api/proctor/end")
    async def end(service: ProctorDep) -> dict[str, Any]:
        return await service.end("proctor")

    @app.get("/api/proctor/audit")
    async def audit(service: ProctorDep) -> PlainTextResponse:
        text = service.audit.path.read_text(encoding="utf-8")
        return PlainTextResponse(text, media_type="application/x-ndjson")

    @app.get("/api/proctor/events")
    async def events(service: ProctorDep) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            while True:
                yield f"data: {json.dumps(service.snapshot())}\n\n"
                changed = service.changed
                with suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)

        return StreamingResponse(stream(), media_type="text/event-stream")


def _pages(app: FastAPI) -> None:
    def page(name: str) -> str:
        return resources.files("grader.exam").joinpath("static", name).read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def portal() -> str:
        return page("portal.html")

    @app.get("/proctor", response_class=HTMLResponse)
    async def proctor() -> str:
        return page("proctor.html")


def create_app(config: ExamConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = ExamService(config)
        app.state.service = service
        try:
            await service.start()
            yield
        finally:
            await service.stop()

    app = FastAPI(title="iiotlab exam", lifespan=lifespan, docs_url=None, redoc_url=None)
    _portal_routes(app)
    _proctor_routes(app)
    _pages(app)
    return app
