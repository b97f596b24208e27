"""Worker: the long-running service: the Faust app (the only package that imports Faust), the
trainer and the snapshot follower.
"""
