"""`attnviz serve`: a local page that answers as you type, on models kept warm.

* :mod:`attnviz.serve.pool`: the warm models, one queue and one forward pass at a time per
  model, stale requests dropped;
* :mod:`attnviz.serve.app`: the Starlette application (page, JSON API, Host/Origin checks,
  body caps, JSON errors);
* :mod:`attnviz.serve.server`: binding the port and running uvicorn.

Nothing here is imported by ``import attnviz``: Starlette, uvicorn and torch load only when a
server starts.
"""
