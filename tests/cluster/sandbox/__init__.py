"""The sandbox (``make sandbox``, ``python -m tests.cluster.sandbox``): the whole product working
on one machine, on a real local Kubernetes control plane.

etcd + kube-apiserver + kube-controller-manager v1.36.2 (:mod:`tests.cluster.controlplane`), the
chart's RBAC and webhook, a test kubelet running pods as local processes, the real operator as a
process, the example migrations against SQLite (or a given database), and a timeline of what
happens. Test-only code: it lives under ``tests/`` and the product never imports it.
"""
