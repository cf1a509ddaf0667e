"""Local stand-ins for a cluster and a network: a real kube-apiserver + etcd, network namespaces.

Used by the tests and the demo, never by the operator in production.
"""
