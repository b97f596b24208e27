"""Spec: the declarations (pipelines/*.yaml, topics/*.yaml, the settings), validated into frozen
values. No I/O but reading those files.
"""
