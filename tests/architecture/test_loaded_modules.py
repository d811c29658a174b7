"""What the operator process loads: only what its configuration uses.

cryptography (≈9 MiB of RSS, docs/benchmarks.md "Operator footprint") is loaded only when the
operator manages its webhook certificate itself; one whose certificate comes from files
(cert-manager, ``--webhook-cert-dir``) never loads it. No second Kubernetes client is loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import alembic_operator.controller.handlers
loaded = {m.split(".")[0] for m in sys.modules}
before = "cryptography" in loaded
from alembic_operator.controller.certificates import CertificateManager
CertificateManager.certfile.fget  # the class is usable without it
from alembic_operator.controller import pki  # what a managed certificate's first sync imports
print(json.dumps({"before": before, "after": "cryptography" in sys.modules,
                  "clients": sorted(loaded & {"kubernetes", "kubernetes_asyncio", "lightkube"})}))
"""


def test_cryptography_loads_only_for_a_managed_certificate() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(probe.stdout)
    assert found == {"before": False, "after": True, "clients": ["lightkube"]}
