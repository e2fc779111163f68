"""Run moto's server with DynamoDB requests serialised: `python -m tests.helpers.moto_launch HOST PORT`.

moto's server handles requests on threads, and its DynamoDB backend does not lock: two
`TransactWriteItems` arriving together can both pass their conditions, which real DynamoDB
never allows (transactions are serializable). Taking one lock around each DynamoDB request
restores the guarantee the store relies on. Other services (S3, SQS long polls, CloudFormation)
stay concurrent.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_dynamodb = threading.Lock()


def serialised(app: Any) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                return list(app(environ, start_response))
        return app(environ, start_response)  # type: ignore[no-any-return]

    return wsgi


def main(host: str, port: int) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
