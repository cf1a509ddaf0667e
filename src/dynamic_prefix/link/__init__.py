"""Linux link plumbing: interface facts, link and address watches, socket options.

The only package that talks netlink, ioctl or /proc; imported by `dynamic_prefix.sources`
(to open their sockets and wait for their interfaces) and `dynamic_prefix.cli` (doctor).
"""
