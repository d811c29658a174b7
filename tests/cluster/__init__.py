"""Test-only: a real control plane on loopback, a test kubelet, a fault proxy, the sandbox.

Never imported by the product (an import-linter contract forbids it) and never in the wheel or
the image. See docs/testing.md.
"""
