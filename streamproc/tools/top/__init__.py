"""Tool: `streamproc top`, a live view of running workers' /metrics. `exposition`, `window`,
`quantile` and `sections` do no I/O; `render` draws the view, `live` scrapes and shows it."""
