"""LaTeX-equivalence HTTP server: is a model's answer mathematically equal to the ground truth?

Run: ``bash server/math/start.sh`` (uvicorn ``math_server:app`` with ``--app-dir server/math``); settings come from
``MATH_SERVER_*`` variables (server_settings.py, README.md). Endpoints:

- ``POST /is_equal`` ``{"str1": prediction, "str2": ground_truth}`` -> ``{"equal": bool, "status": str}``
- ``POST /verify`` ``{"pairs": [{"prediction": str, "ground_truth": str}, ...]}`` -> ``{"results": [...]}`` in order
- ``GET /health`` -> 200 ``{"status": "ok", ...}`` once the checker workers are warm, 503 before

Checks run in a pool of killable worker processes (checker_pool.py). Request bodies are capped by an ASGI middleware
(body_limit.py); malformed requests get 400/422 with a message that never quotes the input.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from body_limit import BodySizeLimit
from checker_pool import STATUSES, CheckerPool, PoolBroken
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from server_settings import ServerSettings

logger = logging.getLogger("math_server")

CLIENT_CLOSED_REQUEST = 499  # nginx's code for it; never seen by the client, who has left

# Field names the server defines; any other key in an error location came from the client and is not echoed.
_KNOWN_FIELDS = {"body", "str1", "str2", "pairs", "prediction", "ground_truth"}


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a lone surrogate can then never fail to encode (HTTP 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _request_models(settings: ServerSettings) -> tuple[type[BaseModel], type[BaseModel]]:
    Answer = Annotated[str, Field(max_length=settings.max_answer_chars)]

    class IsEqualRequest(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        str1: Answer  # the model's answer
        str2: Answer  # the ground truth

    class Pair(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        prediction: Answer
        ground_truth: Answer

    class VerifyRequest(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        pairs: Annotated[list[Pair], Field(max_length=settings.max_batch)]

    return IsEqualRequest, VerifyRequest


def _describe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error without the offending input: location (known field names and indices only), type, and
    pydantic's message, which states the rule broken and never the value."""
    location = [
        part if isinstance(part, int) or part in _KNOWN_FIELDS else "<unexpected field>" for part in error["loc"]
    ]
    return {"loc": location, "type": str(error.get("type", "")), "msg": str(error.get("msg", ""))[:200]}


async def _validation_error(_request: Request, exc: RequestValidationError) -> AsciiJSONResponse:
    # FastAPI's default handler echoes the input (a 1 MB answer comes back whole) and crashes on lone surrogates.
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return AsciiJSONResponse({"detail": "request body is not valid JSON"}, status_code=400)
    return AsciiJSONResponse({"detail": [_describe_error(error) for error in errors[:20]]}, status_code=422)


async def _wait_for_disconnect(request: Request) -> None:
    # The body has been read, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_client_leaves(request: Request, checks: Awaitable[list[str]]) -> list[str] | None:
    """Await ``checks``; if the client disconnects first, cancel them and return None. Cancelling drops the batch's
    queued checks and kills the workers running its checks, so an abandoned batch stops costing CPU at once."""
    checking = asyncio.ensure_future(checks)
    watching = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({checking, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
    if checking.done():
        return checking.result()
    checking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await checking
    logger.info("client left before its checks finished; they were cancelled")
    return None


async def _pool_broken(_request: Request, exc: PoolBroken) -> AsciiJSONResponse:
    detail = f"checker pool broken ({exc}); it is being rebuilt, retry in a few seconds"
    return AsciiJSONResponse({"detail": detail}, status_code=503, headers={"retry-after": "5"})


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the ASGI app; the checker pool starts with the app's lifespan and stops with it."""
    settings = settings or ServerSettings.from_env()
    pool = CheckerPool(settings)
    IsEqualRequest, VerifyRequest = _request_models(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # uvicorn configures only its own loggers; this makes the per-batch status counts visible (no-op if the
        # embedding process already set up logging).
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        pool.start()
        await pool.warm_up()
        watcher = asyncio.create_task(pool.watch())
        try:
            yield
        finally:
            watcher.cancel()
            pool.close()

    app = FastAPI(title="deltal LaTeX-equivalence server", lifespan=lifespan, default_response_class=AsciiJSONResponse)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PoolBroken, _pool_broken)

    @app.post("/is_equal")
    async def is_equal(body: IsEqualRequest, request: Request) -> Any:
        statuses = await _unless_client_leaves(request, pool.check_pairs([(body.str2, body.str1)]))
        if statuses is None:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        return {"equal": statuses[0] == "equal", "status": statuses[0]}

    @app.post("/verify")
    async def verify(body: VerifyRequest, request: Request) -> Any:
        pairs = [(pair.ground_truth, pair.prediction) for pair in body.pairs]
        statuses = await _unless_client_leaves(request, pool.check_pairs(pairs))
        if statuses is None:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        return {"results": [{"equal": status == "equal", "status": status} for status in statuses]}

    @app.get("/health")
    async def health() -> AsciiJSONResponse:
        status = "ok" if pool.healthy else "broken" if pool.broken_reason is not None else "starting"
        body = {
            "status": status,
            "workers": settings.workers,
            "inner_timeout_s": settings.inner_timeout_s,
            "hard_timeout_s": settings.hard_timeout_s,
            "max_batch": settings.max_batch,
            "max_answer_chars": settings.max_answer_chars,
            "statuses": list(STATUSES),
            "checked": dict(pool.status_counts),
            "fast_path_decided": pool.fast_path_decided,
        }
        if pool.broken_reason is not None:
            body["reason"] = pool.broken_reason
        return AsciiJSONResponse(body, status_code=200 if pool.healthy else 503)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, body_timeout_s=settings.body_timeout_s)
    return app


app = create_app()
