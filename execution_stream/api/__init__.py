"""The HTTP API: `GET /executions` and `GET /executions/{id}` for the web view, health, readiness
and an OpenAPI document.

`app.build_api(settings, reader)` builds the aiohttp application; `server.run_api(settings)`
serves it (the `execution-stream api` command).
"""
