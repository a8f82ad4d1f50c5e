"""A framework-free ASGI app (the shape FastAPI and Starlette apps have): echoes method, path, query and body."""

import json


async def app(scope, receive, send):
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "body": body.decode(),
    }
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"x-asgi", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})
