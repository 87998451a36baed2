"""The contract between the control plane and the edge: what one process writes and the other reads.

Both processes import this package; neither imports the other's. It holds the LMDB layout and
value framing (:mod:`contract.framing`, :mod:`contract.store`), the change sets and the Redis
protocol that carries them to other hosts (:mod:`contract.redis`), and the shape of the intake
records the edge queues for the control plane (:mod:`contract.intake`).
"""
