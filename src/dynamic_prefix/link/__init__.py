"""Linux link plumbing: interface facts, link and address watches, socket options.

The only package that talks netlink, ioctl or /proc; imported by `dynamic_prefix.sources`
(to open their sockets and wait for their interfaces) and `dynamic_prefix.cli` (doctor).
`sockets` names the kernel's numbers, `rtnetlink` decodes the route netlink messages
pyroute2 is not used for, `interfaces` reads what the kernel says about an interface,
`addresses` asks it over pyroute2 (for doctor), and `watch` waits for links to come and go.
"""
