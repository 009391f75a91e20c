"""Work spread over several machines: a job queue on PostgreSQL and the workers that take
its jobs (``run --queue``, ``ladder run --queue``, ``worker``). Studies on several machines
share the same server through Optuna's own storage (``cifar_core.tuning.storage``).
"""
