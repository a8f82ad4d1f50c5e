"""Which paths the lab's HTTP API routes to the function, mirroring what `coldbrew package` deploys.

A deployed HTTP API has no ``POST /_warm`` route unless it was packaged with ``--warm-route``; API Gateway
answers a request for a route that does not exist itself, with ``404 {"message": "Not Found"}``, and never
invokes the function. The lab does the same unless ``LabConfig.warm_secret`` opens the route (and then the
function, which gets the secret as ``COLDBREW_WARM_SECRET``, refuses requests without it: 403).
"""

from __future__ import annotations

from coldbrew.lab.httpserver import Handler, Request, Response

WARM_PATH = "/_warm"
WARM_SECRET_ENV = "COLDBREW_WARM_SECRET"
NOT_FOUND = {"message": "Not Found"}


def route(handle: Handler, *, warm_route: bool) -> Handler:
    """Wrap the front door so ``/_warm`` is answered 404 without invoking the function unless ``warm_route``."""
    if warm_route:
        return handle

    async def routed(request: Request) -> Response:
        if request.path == WARM_PATH:
            return Response.json(404, NOT_FOUND)
        return await handle(request)

    return routed
