"""A tiny app for devhost's own tests: sync and async functions, keys, route params, a timer."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
TIMER_RUNS = []


@app.route(route="hello/{name}", methods=["GET"])
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    body = {"name": req.route_params["name"], "q": req.params.get("q"), "setting": os.environ.get("SAMPLE_SETTING")}
    return func.HttpResponse(json.dumps(body), mimetype="application/json", headers={"X-Sample": "yes"})


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.get_body(), status_code=201, mimetype="application/octet-stream")


@app.route(route="items/{id:int}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
async def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"{req.method} {req.route_params['id']}")


@app.route(route="secret", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
async def secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin only")


@app.route(route="boom", methods=["GET"])
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("a bug with a secret=hunter2 in it")


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
async def tick(timer: func.TimerRequest) -> None:
    TIMER_RUNS.append(timer.past_due)
    with open(os.environ["SAMPLE_TIMER_FILE"], "a", encoding="utf-8") as marker:
        marker.write(f"past_due={timer.past_due}\n")
