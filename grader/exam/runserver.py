"""Run the exam app under uvicorn and print where it is (the ready line)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.exam.service import ExamConfig, ExamService
from grader.exam.spec import Exam
from grader.signing import load_signing_key
from iiotlab.settings import Settings


@dataclass(frozen=True)
class ServeOptions:
    exam: Exam
    students: tuple[str, ...]
    out: Path
    host: str
    port: int
    json_line: bool
    wait_gateway_s: float
    parallel: int


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def ready_line(config: ExamConfig, service: ExamService, port: int) -> dict[str, str]:
    base = f"http://{config.advertised}:{port}"
    return {
        "portal": base + "/",
        "proctor": base + "/proctor",
        "proctor_token": service.proctor_token,
        "codes": str(service.codes_file),
    }


async def serve(options: ServeOptions) -> None:
    import uvicorn

    from grader.exam.server import create_app

    settings = Settings.from_env()
    config = ExamConfig(
        exam=options.exam,
        students=options.students,
        out_dir=options.out.resolve(),
        key=load_signing_key(settings),
        course_secret=settings.course_secret,
        host=options.host,
        wait_gateway_s=options.wait_gateway_s,
        parallel=options.parallel,
    )
    app = create_app(config)
    sock = _bind(options.host, options.port)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    while not server.started:
        if task.done():
            await task
            raise SystemExit(2)
        await asyncio.sleep(0.1)
    line = ready_line(config, app.state.service, port)
    if options.json_line:
        sys.stdout.write(json.dumps(line) + "\n")
    else:
        sys.stdout.write(
            f"exam {options.exam.spec.id}: portal {line['portal']}  proctor {line['proctor']}\n"
            f"proctor token: {line['proctor_token']}\ncodes: {line['codes']}\n"
        )
    sys.stdout.flush()
    await task
