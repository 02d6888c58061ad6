"""Exposure probes: what a deployed model gives away through its interface.

``exposure.output_granularity`` measures how much of the model's scores each answer
reveals; ``exposure.query_limits`` checks an HTTP endpoint for authentication and rate
limiting. Neither is an attack in itself; both measure the openings that model
inversion, membership inference and model stealing need.
"""
