"""The wire protocols, pure and sans-IO: NDP and ICMPv6 echo codecs, the DHCPv6 codec and
client state machine, and the Router Advertisement prefix tracker.

Bytes and the current time come in as arguments; messages to send, timers to set and
events come out as values. No sockets, clocks or Kubernetes; never imports
`dynamic_prefix.model`.
"""
