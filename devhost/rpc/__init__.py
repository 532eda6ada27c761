"""devhost's runtime path: the app's functions run inside Microsoft's ``azure-functions-runtime`` (Python 3.13+).

On the platform the Functions host (.NET) starts a Python worker process and talks to it with the
``FunctionRpc`` messages (``StreamingMessage``: worker init, functions metadata, function load,
invocation, logs). From Python 3.13 on that worker is a thin proxy around the ``azure-functions-runtime``
library, which indexes the app, converts trigger payloads (``RpcHttp``, timer JSON, queue text and
trigger metadata) into ``HttpRequest``/``TimerRequest``/``QueueMessage``, and invokes the functions on its
event loop and thread pool (Microsoft Learn, "Changes and guidance for Python 3.13+ in Azure Functions";
Azure/azure-functions-python-worker, ``proxy_worker/dispatcher.py``).

Here devhost plays the host and :mod:`devhost.rpc.worker` plays the proxy worker, in a child process,
with the same messages. Modules:

``protos``    the generated message classes (from Microsoft's ``azure-functions-runtime-v1`` wheel)
``frames``    one message per length-prefixed frame on a pipe (where the platform uses a gRPC stream)
``worker``    the worker process: ``python -m devhost.rpc.worker``
``channel``   the host side: start the worker, init, index, load, invoke, route its logs
``convert``   host-side conversions: aiohttp request -> ``RpcHttp``, ``RpcHttp`` -> response, timer/queue payloads
``functions`` the function table built from the worker's metadata, with functions that invoke through it
``logs``      the worker's ``RpcLog`` messages under ``host.json`` ``logging.logLevel``
"""
