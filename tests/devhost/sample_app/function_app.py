"""A tiny app for devhost's own tests: sync and async functions, keys, route params, timers, a queue."""

import asyncio
import json
import os
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
IMPORT_SETTING = os.environ.get("SAMPLE_SETTING")  # proves local.settings.json is loaded before the import
SEEN: dict[str, object] = {}  # where functions ran (thread, loop), for in-process tests


def _marker(line: str) -> None:
    with open(os.environ["SAMPLE_MARKER_FILE"], "a", encoding="utf-8") as marker:
        marker.write(line + "\n")


@app.route(route="hello/{name}", methods=["GET"])
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    SEEN["async"] = (threading.get_ident(), asyncio.get_running_loop())
    body = {
        "name": req.route_params["name"],
        "q": req.params.get("q"),
        "setting": os.environ.get("SAMPLE_SETTING"),
        "at_import": IMPORT_SETTING,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json", headers={"X-Sample": "yes"})


@app.route(route="hello/world", methods=["GET"])  # registered after hello/{name}: literals still win
async def hello_world(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("the literal route", mimetype="text/html")


@app.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    SEEN["sync"] = threading.get_ident()
    return func.HttpResponse(req.get_body(), status_code=201, mimetype="application/octet-stream")


@app.route(route="inspect/{a}/{b?}", methods=["GET", "POST"], trigger_arg_name="request")
def inspect_request(request: func.HttpRequest, context) -> func.HttpResponse:  # sync, custom names, a context
    body = {
        "method": request.method,
        "url": request.url,
        "header": request.headers.get("x-custom"),
        "params": dict(request.params),
        "route": dict(request.route_params),
        "body": request.get_body().decode(),
        "function": context.function_name,
    }
    return func.HttpResponse(json.dumps(body), headers={"Content-Type": "application/problem+json", "Vary": "Accept"})


@app.route(route="letters/{word:alpha}", methods=["GET"])
async def letters(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params["word"])


@app.route(route="files/{*rest}")  # every method
async def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"{req.method} {req.route_params.get('rest', '')}")


@app.route(route="items/{id:int}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
async def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"{req.method} {req.route_params['id']}")


@app.route(route="secret", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin only")


@app.route(route="boom", methods=["GET"])
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("a bug with a secret=hunter2 in it")


@app.route(route="boom-sync", methods=["GET"])
def boom_sync(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("sync bug with secret=hunter2")


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
async def tick(timer: func.TimerRequest) -> None:
    _marker(f"tick past_due={timer.past_due}")


@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="mytimer")
def tick_fails(mytimer: func.TimerRequest) -> None:
    raise RuntimeError("timer bug")


@app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    _marker(f"work {msg.get_body().decode()}")


@app.route(route="cookies", methods=["GET"])
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(status_code=204)
    response.headers.add_header("Set-Cookie", "a=1")
    response.headers.add_header("Set-Cookie", "b=2")
    return response


@app.route(route="headers", methods=["GET"])
async def header_sizes(req: func.HttpRequest) -> func.HttpResponse:
    """How much of the request reached the function (sizes only: values may be tokens)."""
    body = {"authorization_length": len(req.headers.get("authorization", "")), "count": len(req.headers)}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    """Where functions run (devhost's runtime path runs them in a worker process), and a log line from inside one."""
    import logging
    import sys

    logging.getLogger("sample").warning("whoami ran")
    body = {"pid": os.getpid(), "runtime": "azure_functions_runtime" in sys.modules, "python": list(sys.version_info[:2])}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
