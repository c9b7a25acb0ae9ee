"""The app's HTTP API on loopback, served by Chalice's own local server (the routes run unchanged)."""

from __future__ import annotations

import functools
import threading
import warnings
from typing import Any

from sagedock.local.logs import invocation


class ApiServer:
    """Chalice's local dev server for `app`, on a loopback port, in a background thread."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout_seconds: int = 60
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._timeout = timeout_seconds
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        """Bind and serve; returns the base URL."""
        from chalice.config import Config
        from chalice.local import ChaliceRequestHandler, create_local_server

        class QuietHandler(ChaliceRequestHandler):
            def log_message(self, *args: Any) -> None:
                """Requests are not logged: the CLI shows what matters."""

            def _one_invocation(self) -> None:
                # Per request, not per connection: a keep-alive connection waiting for its next request
                # must not hold the one-invocation-at-a-time lock and stall every other client.
                with invocation():
                    self._generic_handle()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _one_invocation

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, ...) reaches the app too, which answers 405 as for any
                # method a path does not serve, instead of http.server's HTML 501.
                if name.startswith("do_"):
                    return self._one_invocation
                raise AttributeError(name)

        # Chalice local serves routes without IAM auth and says so on every start; that is the point here.
        warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode")
        config = Config.create(
            chalice_stage="local",
            app_name=self._app.app_name,
            lambda_timeout=self._timeout,
            lambda_memory_size=512,
        )
        self._server = create_local_server(self._app, config, self._host, self._port)
        self._server.server.daemon_threads = True
        self._server.server.RequestHandlerClass = functools.partial(
            QuietHandler, app_object=self._app, config=config
        )
        host, port = self._server.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.server.serve_forever, name="api", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
