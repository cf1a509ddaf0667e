"""Pool backends: what a DynamicPrefix means for one kind of load-balancer pool.

Each backend renders the desired content of a pool as a pure function of the pool as
observed and the placements (prefixes, ranges, subnets) the DynamicPrefix status calls
for, and returns a `Plan` of API actions; the operator applies plans. Backends know the
shape of their pool kind and nothing about watching or retrying.
"""
