#!/usr/bin/env python3
"""Serve a built mobile demo (dist/) locally, gzip-compressed, counting the bytes sent.

    python mobile_demo/serve.py mobile_demo/dist [--port 8080] [--host 127.0.0.1]

What ``python -m http.server`` does, plus what a real static host (nginx ``gzip_static``, any CDN-free
HTTPS host that compresses) does for the two big files: ``build.py`` writes a ``.gz`` beside every file
that compresses, and a browser that accepts gzip gets that one with ``Content-Encoding: gzip``. MediaPipe's
WebAssembly is 13.0 MB raw and 3.8 MB gzipped: this is what keeps the first load of the app, model
included, under 10 MB (see benchmarks/bench_pwa_load.py). The browser decompresses; the service worker
caches the decoded files, so offline use is unchanged.

Only for local use and tests (binds 127.0.0.1 by default). dermtool is a decision-support research tool,
not a medical device.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

#: Content types the browser insists on (streaming WebAssembly compilation needs application/wasm).
CONTENT_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".webmanifest": "application/manifest+json",
    ".tflite": "application/octet-stream",
    ".json": "application/json",
}


def make_handler(directory: Path, counter: dict[str, int] | None = None, quiet: bool = False) -> Any:
    """A request handler class serving ``directory``, preferring ``FILE.gz`` when the client accepts gzip.

    ``counter`` (if given) receives the body bytes sent per path, as transferred (compressed when gzip).
    """

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

        def send_head(self) -> BinaryIO | None:
            path = self.translate_path(self.path)
            compressed = path + ".gz"
            accepts_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
            if accepts_gzip and os.path.isfile(path) and os.path.isfile(compressed):
                source = open(compressed, "rb")
                size = os.fstat(source.fileno()).st_size
                self.send_response(200)
                self.send_header("Content-Type", self.guess_type(path))
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(size))
                self.send_header("Vary", "Accept-Encoding")
                self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
                self.end_headers()
                return source
            return super().send_head()

        def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:
            data = source.read()
            outputfile.write(data)
            if counter is not None:
                key = self.path.split("?")[0]
                counter[key] = counter.get(key, 0) + len(data)

    return functools.partial(Handler, directory=str(directory))


class DemoServer:
    """``with DemoServer(dist) as server:`` serves on ``server.url`` in a thread; ``server.bytes_sent``."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> None:
        self.bytes_sent: dict[str, int] = {}
        self.httpd = http.server.ThreadingHTTPServer((host, port), make_handler(directory, self.bytes_sent, quiet))
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="mobile-demo", daemon=True)

    def __enter__(self) -> "DemoServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dist", type=Path, help="the folder build.py wrote (mobile_demo/dist)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
    arguments = parser.parse_args(argv)
    if not (arguments.dist / "index.html").is_file():
        print(f"Error: {arguments.dist} is not a built demo (no index.html): run mobile_demo/build.py first",
              file=sys.stderr)
        return 2
    server = DemoServer(arguments.dist, arguments.host, arguments.port, quiet=False)
    print(f"Serving {arguments.dist} on {server.url}/ (gzip where the browser accepts it; Ctrl+C to stop)")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
