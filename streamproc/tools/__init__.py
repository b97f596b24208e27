"""Tools: what a user runs besides the worker: run-file, score-file, the demo, model
administration, the live view of the workers' metrics (`top`), and the operator's commands
(`produce` a checked file, `tail` a topic, `dlq inspect`).
"""
