"""The example shop app as the sandbox's test kubelet runs it: ``examples/app/server.py``'s
handler, served on 127.0.0.1 on a free port (the image listens on 0.0.0.0:8000, and two replicas
on one host cannot share a port). ``$SHOP_MIGRATIONS`` is the image's migrations folder.

Usage: ``python shop_app.py PATH/TO/server.py``
"""

from __future__ import annotations

import runpy
import sys
from http.server import ThreadingHTTPServer


def main(server_py: str) -> None:
    server = runpy.run_path(server_py, run_name="shop")  # reads the heads at import
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), server["Handler"])
    heads = ", ".join(server["HEADS"])
    print(f"shop: schema head {heads}; serving on http://127.0.0.1:{httpd.server_port}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
