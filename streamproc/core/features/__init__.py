"""Online features: the state layout (state), one view's arithmetic (view), a batch applied
in order (stage), and the read path (reader)."""
