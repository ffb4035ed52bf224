"""`execution-stream demo`: the demo's data (`seed`), its stand-in runner (`runner`), its live view
(`progress`), its look at the HTTP API (`api_check`), and their wiring (`run`)."""
