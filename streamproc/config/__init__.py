"""Config: what a user declares (pipelines/*.yaml, topics/*.yaml, the STREAMPROC_* settings),
validated into frozen values. No I/O but reading those files.

Named config, not spec: a spec/ folder reads as tests to people (RSpec, Jasmine) and to tools.
"""
